import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { createConsoleController } from './resilience-console.controller.js';
import { RESILIENCE_CONSOLE_OPTIONS, resolveConsoleOptions, type ResilienceConsoleOptions } from './resilience-console.options.js';
import { ResilienceConsole } from './resilience-console.service.js';

/**
 * The resilience console: a page (and its JSON endpoints) that shows the application's breakers,
 * bulkheads, retry budgets, HTTP clients and recent events live, and lets an operator isolate or
 * reset a breaker and switch chaos rules, each action logged with who did it. Opt-in: nothing is
 * served unless you import it, and it refuses to start without a guard unless
 * `allowUnauthenticated: true` is written explicitly. Needs `ResilienceModule` in the application.
 * @example
 * @Module({
 *   imports: [
 *     ResilienceModule.forRoot(),
 *     ResilienceConsoleModule.register({ path: 'ops/resilience', guard: AdminGuard }),
 *   ],
 * })
 * export class AppModule {}
 * @publicApi
 */
@Module({})
export class ResilienceConsoleModule {
  /**
   * Serves the console under `options.path` behind `options.guard`.
   * @throws ResilienceConfigError when no guard is given (and `allowUnauthenticated` is not `true`),
   * or a path or limit is invalid: the application does not start.
   */
  static register(options: ResilienceConsoleOptions): DynamicModule {
    const resolved = resolveConsoleOptions(options);
    return {
      module: ResilienceConsoleModule,
      imports: [DiscoveryModule, ...resolved.imports],
      controllers: [createConsoleController(resolved.path, resolved.guard)],
      providers: [{ provide: RESILIENCE_CONSOLE_OPTIONS, useValue: resolved }, ResilienceConsole],
      exports: [ResilienceConsole],
    };
  }
}
