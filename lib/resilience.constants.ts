/**
 * Injection token of the options after defaults were merged and validated once at start-up
 * (`ResolvedResilienceOptions`). Inject it with `@Inject(RESOLVED_RESILIENCE_OPTIONS)`.
 * @publicApi
 */
export const RESOLVED_RESILIENCE_OPTIONS = Symbol('RESOLVED_RESILIENCE_OPTIONS');

/** Metadata key written by `@Timeout()`. @internal */
export const TIMEOUT_METADATA = 'nest-resilience:timeout';
/** Metadata key written by `@Retryable()`. @internal */
export const RETRYABLE_METADATA = 'nest-resilience:retryable';
/** Metadata key written by `@CircuitBreaker()`. @internal */
export const CIRCUIT_BREAKER_METADATA = 'nest-resilience:circuit-breaker';
/** Metadata key written by `@Bulkhead()`. @internal */
export const BULKHEAD_METADATA = 'nest-resilience:bulkhead';
/** Metadata key written by `@Fallback()`. @internal */
export const FALLBACK_METADATA = 'nest-resilience:fallback';
/** Metadata key written by `@UsePolicy()`. @internal */
/** Metadata key of `@RateLimit()`. @internal */
export const RATE_LIMIT_METADATA = 'nest-resilience:rate-limit';
/** Metadata key of `@UsePolicy()`. @internal */
export const USE_POLICY_METADATA = 'nest-resilience:use-policy';
/** Metadata key written by `@Idempotent()`. @internal */
export const IDEMPOTENT_METADATA = 'nest-resilience:idempotent';

/**
 * Injection token of the core `PolicyEnvironment` (clock, random, event sink) every pipeline uses.
 * @publicApi
 */
export const RESILIENCE_POLICY_ENVIRONMENT = Symbol('RESILIENCE_POLICY_ENVIRONMENT');
