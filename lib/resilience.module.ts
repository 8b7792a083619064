import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { CircuitBreakerService } from './engine/circuit-breaker.service.js';
import { ContextAdapters } from './contexts/context-adapters.js';
import { ChaosControl } from './core/fault-injection.js';
import type { PolicyEnvironment } from './core/policy.js';
import { PolicyRegistry } from './core/policy-registry.js';
import { DeadlineQueue } from './core/deadline-queue.js';
import { frameDeadlineContext } from './context/context-frame.js';
import { SharedPolicyState } from './core/shared-policy-state.js';
import { ResilienceErrorMapper } from './http/resilience-error.mapper.js';
import { ResilienceExceptionFilter } from './contexts/resilience-exception.filter.js';
import { IdempotentRoutes } from './engine/idempotent-routes.js';
import { IdempotencyPurgerService } from './idempotency/idempotency-purger.js';
import { IdempotencyStore } from './core/idempotency/idempotency-store.interface.js';
import { InMemoryIdempotencyStore } from './core/idempotency/in-memory-idempotency.store.js';
import type { ResilienceModuleOptions, ResolvedResilienceOptions } from './interfaces/resilience-module-options.interface.js';
import { observabilityProviders } from './observability/observability.providers.js';
import { ResilienceEvents } from './observability/resilience-events.js';
import { RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS } from './resilience.constants.js';
import {
  ConfigurableResilienceModule,
  RESILIENCE_ASYNC_OPTIONS_TYPE,
  RESILIENCE_MODULE_OPTIONS,
  RESILIENCE_OPTIONS_TYPE,
} from './resilience.module-definition.js';
import { ResilienceBinder } from './engine/resilience-binder.js';
import { ResilienceEngine } from './engine/resilience-engine.js';
import { resolveResilienceOptions } from './engine/resilience-options.resolver.js';
import { ResiliencePipelines } from './engine/resilience-pipelines.js';
import { ResilienceService } from './engine/resilience.service.js';

const providers: Provider[] = [
  {
    provide: RESOLVED_RESILIENCE_OPTIONS,
    useFactory: (options: ResilienceModuleOptions | undefined) => resolveResilienceOptions(options),
    inject: [RESILIENCE_MODULE_OPTIONS],
  },
  ResilienceEvents,
  {
    provide: RESILIENCE_POLICY_ENVIRONMENT,
    useFactory: (options: ResolvedResilienceOptions, events: ResilienceEvents): PolicyEnvironment => ({
      clock: options.clock,
      random: options.random,
      events: events.sink,
      // every timeout of the application on one (unref'd) timer: no setTimeout and clearTimeout
      // per call
      deadlines: new DeadlineQueue(options.clock, { keepTimerWhenIdle: true, context: frameDeadlineContext }),
    }),
    inject: [RESOLVED_RESILIENCE_OPTIONS, ResilienceEvents],
  },
  {
    // one registry per application: breaker, bulkhead and budget state is shared by every
    // instance of a provider and every request scope
    provide: PolicyRegistry,
    useFactory: (env: PolicyEnvironment, options: ResolvedResilienceOptions) =>
      new PolicyRegistry(env, { maxKeys: options.maxPolicyKeys, sharedState: options.sharedState }),
    inject: [RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS],
  },
  {
    // the runtime chaos rules (null unless chaos is enabled: then no pipeline has an injection stage)
    provide: ChaosControl,
    useFactory: (options: ResolvedResilienceOptions, env: PolicyEnvironment) =>
      options.chaos === undefined ? null : ChaosControl.fromOptions(options.chaos, { clock: env.clock, events: env.events }),
    inject: [RESOLVED_RESILIENCE_OPTIONS, RESILIENCE_POLICY_ENVIRONMENT],
  },
  {
    // the backend itself, for health checks and shutdown hooks (null when none is configured)
    provide: SharedPolicyState,
    useFactory: (options: ResolvedResilienceOptions) => options.sharedState ?? null,
    inject: [RESOLVED_RESILIENCE_OPTIONS],
  },
  {
    provide: IdempotencyStore,
    useFactory: (options: ResolvedResilienceOptions) =>
      options.idempotency?.store ?? new InMemoryIdempotencyStore({ clock: options.clock }),
    inject: [RESOLVED_RESILIENCE_OPTIONS],
  },
  IdempotencyPurgerService,
  ResiliencePipelines,
  {
    provide: ResilienceErrorMapper,
    useFactory: (options: ResolvedResilienceOptions) => {
      const custom = options.errorMapper;
      if (custom === undefined) return new ResilienceErrorMapper(options);
      return typeof custom === 'function' ? new custom(options) : custom;
    },
    inject: [RESOLVED_RESILIENCE_OPTIONS],
  },
  IdempotentRoutes,
  ContextAdapters,
  ResilienceEngine,
  // errors only: library errors that reach an undecorated route become problem+json too
  { provide: APP_FILTER, useClass: ResilienceExceptionFilter },
  ...observabilityProviders,
  CircuitBreakerService,
  {
    provide: ResilienceService,
    useFactory: (
      pipelines: ResiliencePipelines,
      env: PolicyEnvironment,
      registry: PolicyRegistry,
      options: ResilienceModuleOptions | undefined,
      chaos: ChaosControl | null | undefined,
    ) => new ResilienceService(pipelines, env, registry, options, chaos),
    inject: [ResiliencePipelines, RESILIENCE_POLICY_ENVIRONMENT, PolicyRegistry, RESILIENCE_MODULE_OPTIONS, { token: ChaosControl, optional: true }],
  },
  ResilienceBinder,
];

/**
 * Timeouts that cancel, bounded retries, idempotency keys, circuit breakers, bulkheads and
 * fallbacks for a Nest application. Import it once in the root module; it is global by default
 * (`isGlobal: false` to opt out). It binds nothing globally on the request path: only routes and
 * provider methods that carry one of its decorators run through it, and every other route runs
 * exactly as without the module. Options are merged with the defaults and validated at start-up,
 * and again by each reload (`ResilienceService.reload()`, or a `reloads` source).
 * @example
 * @Module({ imports: [ResilienceModule.forRoot({ timeout: { status: 504 } })] })
 * export class AppModule {}
 * @example
 * ResilienceModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ retry: { maxAttempts: config.get('RETRY_ATTEMPTS') } }),
 * })
 * @publicApi
 */
@Module({
  imports: [DiscoveryModule],
  providers,
  exports: [
    RESOLVED_RESILIENCE_OPTIONS,
    RESILIENCE_POLICY_ENVIRONMENT,
    ResilienceEvents,
    PolicyRegistry,
    SharedPolicyState,
    ChaosControl,
    IdempotencyStore,
    ResilienceErrorMapper,
    CircuitBreakerService,
    ResilienceService,
    ...observabilityProviders,
  ],
})
export class ResilienceModule extends ConfigurableResilienceModule {
  /** Registers the module with `options` (all optional). */
  static override forRoot(options: typeof RESILIENCE_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }

  /** Registers the module with options computed by a factory, a class or an existing provider. */
  static override forRootAsync(options: typeof RESILIENCE_ASYNC_OPTIONS_TYPE): DynamicModule {
    return super.forRootAsync(options);
  }
}
