import type { ResilienceModuleOptions } from 'nest-resilience';
import type { SampleAppOptions } from '../sample-app.options.js';

/**
 * The model service as one named policy: the background generation uses all of it
 * (`@UsePolicy`), `GET /preview` shares its breaker (`@CircuitBreaker`) with shorter timeouts.
 * The policy name is the key of the breaker state, so every caller sees the same breaker.
 */
export const MODEL_SERVICE_POLICY = 'model-service';

/** Defaults of the generation budget; tests shorten them through {@link SampleAppOptions}. */
export const GENERATION_DEFAULTS = { totalMs: 8_000, attemptMs: 2_000, maxAttempts: 4 } as const;
/** Defaults of the `model-service` breaker. */
export const BREAKER_DEFAULTS = { consecutiveFailures: 5, breakDurationMs: 5_000 } as const;

/**
 * The `policies` of `ResilienceModule.forRoot()`.
 *
 * The breaker opens after more consecutive failures than one generation makes (4 attempts), so a
 * single hung report ends `failed: timeout` rather than tripping the breaker by itself; a model
 * that stays down trips it during the second report.
 */
export function resiliencePolicies(options: SampleAppOptions): NonNullable<ResilienceModuleOptions['policies']> {
  const generation = { ...GENERATION_DEFAULTS, ...options.generation };
  const breaker = { ...BREAKER_DEFAULTS, ...options.breaker };
  return {
    [MODEL_SERVICE_POLICY]: {
      timeout: { total: generation.totalMs, attempt: generation.attemptMs },
      retry: { maxAttempts: generation.maxAttempts },
      circuitBreaker: {
        strategy: { type: 'consecutive', threshold: breaker.consecutiveFailures },
        breakDuration: breaker.breakDurationMs,
      },
    },
  };
}
