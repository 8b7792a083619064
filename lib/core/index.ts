/**
 * `nest-resilience/core`: the framework-free engine (policies, `createPipeline()`, clock and random
 * sources, errors, events) and the idempotency core with its store contract and in-memory store.
 * It loads no `@nestjs/*` module and no rxjs, for workers, scripts and other frameworks.
 * @module nest-resilience/core
 */
export * from './clock.js';
export * from './deadline-queue.js';
export * from './random.js';
export * from './errors.js';
export * from './events.js';
export * from './policy.js';
export { throwIfAborted } from './signals.js';
export * from './options.js';
export {
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_FALLBACK_ON,
  DEFAULT_MAX_POLICY_KEYS,
  DEFAULT_RETRY_BUDGET,
  DEFAULT_TOTAL_TIMEOUT_MS,
} from './defaults.js';
export { computeBackoffDelay } from './backoff.js';
export { isTransientError, statusOf } from './classify.js';
export { retryAfterMsOf } from './retry-after.js';
export * from './upstream-http.error.js';
export { RetryBudget, type RetryBudgetSnapshot } from './retry-budget.js';
export { RetryPolicy, type GiveUpReason, type RetryHooks } from './retry.policy.js';
export { AttemptSettledError, TimeoutPolicy } from './timeout.policy.js';
export {
  CircuitBreakerPolicy,
  type CircuitBreakerCounters,
  type CircuitBreakerSnapshot,
  type CircuitBreakerState,
} from './circuit-breaker.policy.js';
export { BulkheadPolicy, type BulkheadSnapshot } from './bulkhead.policy.js';
export { FallbackPolicy, fallbackCauseOf } from './fallback.policy.js';
export { PolicyRegistry, type PolicyRegistryOptions } from './policy-registry.js';
export {
  LocalRateLimiter,
  RateLimitedError,
  isRateLimitedError,
  resolveRate,
  resolveRateLimit,
  type RateLimiter,
  type RateLimiterSnapshot,
  type RateLimitOptions,
  type RateLimitPermit,
  type RateLimitRefusal,
  type RateOptions,
  type ResolvedRate,
  type SharedRateLimitAnswer,
  type SharedRateLimitBackend,
} from './rate-limiter.js';
export { SharedRateLimiter } from './shared-rate-limiter.js';
export {
  DEFAULT_LAST_GOOD_ENTRIES,
  isStaleWorthy,
  LastGoodCache,
  resolveLastGood,
  STALE_HEADER,
  StaleAnswer,
  type LastGoodOptions,
  type LastGoodStore,
  type SharedLastGoodBackend,
  type SharedLastGoodEntry,
} from './last-good.js';
export { SharedLastGoodCache } from './shared-last-good.js';
export {
  DEFAULT_SHARED_STATE_FLUSH_INTERVAL,
  DEFAULT_SHARED_STATE_MAX_WAIT,
  DEFAULT_SHARED_STATE_RECOVERY_INTERVAL,
  DEFAULT_SHARED_STATE_SLOW_ANSWERS,
  SharedPolicyState,
  SharedRetryBudget,
  SharedStateGuard,
  UNAVAILABLE,
  type RetryPermits,
  type SharedBreakerBackend,
  type SharedBreakerOutcome,
  type SharedBreakerSettings,
  type SharedBreakerState,
  type SharedRetryBudgetBackend,
} from './shared-policy-state.js';
export {
  createPipeline,
  describePipeline,
  PIPELINE_ORDER,
  type Pipeline,
  type PipelineExecuteOptions,
  type PipelineStage,
  type PipelineStageKind,
} from './pipeline.js';
export {
  isBreakerFailure,
  resolveBulkheadOptions,
  resolveCircuitBreakerOptions,
  resolveFallbackOptions,
  resolveRetryBudgetOptions,
  resolveRetryOptions,
  validatePipelineSpec,
} from './validate.js';
export { redactKey } from './redact-key.js';

// The framework-free idempotency core (key grammar, fingerprint, claim/lease/heartbeat/complete/
// release decisions, store contract, in-memory store): usable without Nest from `nest-resilience/core`.
export * from './idempotency/idempotency-core.errors.js';
export { CommitOutcomeUnknownError, IdempotencyStoreFullError, isCommitOutcomeUnknown, isStoreUnavailableError, storeFailureOf, type StoreFailure } from './idempotency/store-failure.js';
export { IdempotencyCore, notKeptProblemOf } from './idempotency/idempotency-core.js';
export type {
  HandlerOutcome,
  IdempotencyAnswer,
  IdempotencyContext,
  IdempotencyCoreDeps,
  IdempotencyExecution,
  IdempotentRequest,
  IdempotentResponse,
} from './idempotency/idempotency-core.interface.js';
export * from './idempotency/idempotency-store.interface.js';
export {
  DEADLINE_LEASE_MARGIN_MS,
  resolveIdempotencyOptions,
  type IdempotencyModuleOptions,
  type IdempotentOptions,
  type ResolvedIdempotencyOptions,
} from './idempotency/idempotency-options.interface.js';
export { parseIdempotencyKey, validateIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, type IdempotencyKeyParseResult } from './idempotency/idempotency-key.js';
export {
  requestFingerprint,
  canonicalJson,
  DEFAULT_FINGERPRINT_LIMITS,
  FingerprintLimitError,
  type FingerprintInput,
  type FingerprintLimits,
} from './idempotency/fingerprint.js';
export {
  DEFAULT_IN_MEMORY_MAX_BYTES,
  DEFAULT_IN_MEMORY_MAX_RECORDS,
  InMemoryIdempotencyStore,
  type InMemoryIdempotencyStoreOptions,
} from './idempotency/in-memory-idempotency.store.js';
export { recordIdOf } from './idempotency/record-id.js';
export {
  ChaosControl,
  DEFAULT_MAX_CHAOS_RULES,
  resolveChaosOptions,
  validateChaosRule,
  type ChaosControlOptions,
  type ChaosOptions,
  type ResolvedChaosOptions,
  type ChaosExceptionFault,
  type ChaosFault,
  type ChaosHttpFault,
  type ChaosLatencyFault,
  type ChaosRule,
  type ChaosRuleInit,
  type ChaosSite,
  type ChaosTarget,
  type PipelineChaos,
} from './fault-injection.js';
export { InjectedFaultError, isInjectedFault, isInjectedFaultError } from './injected-fault.js';
export { idempotent, IdempotentReplayedError, type IdempotentFunctionOptions } from './idempotent.js';
