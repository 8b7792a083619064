import type { Provider } from '@nestjs/common';
import { ResilienceLogger } from './resilience-logger.js';
import { ResilienceTelemetry } from './resilience-telemetry.js';

/**
 * The built-in consumers of `ResilienceEvents` that `ResilienceModule` registers: structured logs
 * ({@link ResilienceLogger}) and OpenTelemetry ({@link ResilienceTelemetry}). Each subscribes in
 * `onModuleInit` and unsubscribes in `onModuleDestroy`; `forRoot({ logging: { enabled: false } })`
 * and `forRoot({ telemetry: { enabled: false } })` turn them off.
 * @internal
 */
export const observabilityProviders: Provider[] = [ResilienceLogger, ResilienceTelemetry];
