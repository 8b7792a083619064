import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ResilienceModuleOptions } from './interfaces/resilience-module-options.interface.js';

/**
 * Builder output of `ResilienceModule`: `forRoot(options)` and `forRootAsync({ imports, inject,
 * useFactory | useClass | useExisting })`, a `createResilienceOptions()` factory method for
 * `useClass`/`useExisting`, and the `isGlobal` extra (default `true`). Part of the published
 * typings because `ResilienceModule` extends it; use `ResilienceModule`, not these.
 */
const built = new ConfigurableModuleBuilder<ResilienceModuleOptions>({ moduleName: 'Resilience' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createResilienceOptions')
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

export const {
  ConfigurableModuleClass: ConfigurableResilienceModule,
  OPTIONS_TYPE: RESILIENCE_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: RESILIENCE_ASYNC_OPTIONS_TYPE,
} = built;

/**
 * Injection token of the options given to `ResilienceModule.forRoot()` / `forRootAsync()`, as given
 * (`RESOLVED_RESILIENCE_OPTIONS` holds them merged with the defaults and validated).
 */
export const RESILIENCE_MODULE_OPTIONS = built.MODULE_OPTIONS_TOKEN;
