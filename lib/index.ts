/**
 * `nest-resilience`: the Nest surface. `ResilienceModule`, the decorators (`@Timeout`,
 * `@Retryable`, `@Idempotent`, `@CircuitBreaker`, `@Bulkhead`, `@RateLimit`, `@Fallback`,
 * `@UsePolicy`, `@AttemptSignal`), the services, the errors an application catches, the request context and the
 * option types. The framework-free engine (policies, `createPipeline()`, the idempotency core,
 * defaults, clocks) is `nest-resilience/core`.
 * Guides: docs/README.md in the repository.
 * @module nest-resilience
 */
// Root entry point. Never import typeorm or @nestjs/terminus from here (optional peers):
// those live behind the `nest-resilience/typeorm` and `nest-resilience/health` subpaths.
// Its public surface is pinned in api-report/nest-resilience.api.md (npm run api:report).

// Module, its tokens and options
export { ResilienceModule } from './resilience.module.js';
export { RESILIENCE_MODULE_OPTIONS } from './resilience.module-definition.js';
export { RESOLVED_RESILIENCE_OPTIONS } from './resilience.constants.js';
export * from './interfaces/index.js';

// Decorators
export * from './decorators/index.js';
export { Idempotent } from './idempotency/idempotent.decorator.js';

// Services
export { ResilienceService, type OptionsReloadResult } from './engine/resilience.service.js';
export { CircuitBreakerService, UnknownCircuitBreakerError } from './engine/circuit-breaker.service.js';
export { ResilienceEvents, type ResilienceEventListener, type ResilienceEventSubscribeOptions } from './observability/resilience-events.js';
export { DEFAULT_EVENT_LOG_LEVELS, ResilienceLogger } from './observability/resilience-logger.js';
export { ResilienceTelemetry, TELEMETRY_NAMES, type CircuitStateSample, type CircuitStateSource } from './observability/resilience-telemetry.js';
export type { ResilienceLogLevel, ResilienceLoggingOptions, ResilienceObservabilityOptions, ResilienceTelemetryOptions } from './observability/observability-options.interface.js';

// Answers: the error mapper and problem+json
export { ResilienceErrorMapper, ResilienceProblemCode, type ErrorMapperSettings, type ErrorMappingHints } from './http/resilience-error.mapper.js';
export {
  DEFAULT_PROBLEM_TYPE_BASE,
  PROBLEM_JSON_CONTENT_TYPE,
  ProblemDetailsException,
  applyProblemHeaders,
  isProblemDetailsException,
  type ProblemDetails,
  type ProblemDetailsInit,
} from './http/problem-details.js';

// The request: its context, signal and deadline, passed on to outgoing calls
export { Resilience, currentSignal, getRequestInfo, type RequestInfo, type ResilienceCurrent } from './context/resilience-context.js';
export { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER, resilientFetch, withDeadline } from './fetch/with-deadline.js';

// Contexts beyond HTTP: the error each caller receives (see docs/contexts.md)
export type { ResilienceContextType } from './contexts/context-adapter.js';
export type { RpcProblem } from './contexts/rpc.context.js';
export type { GraphQLProblemExtensions } from './contexts/graphql.context.js';
export type { WsProblem } from './contexts/ws.context.js';
export { RabbitMqAcknowledgement, type RabbitMqAcknowledgementOptions, type RabbitMqTransientFailure } from './contexts/rabbitmq-acknowledgement.interceptor.js';
export { throwIfAborted } from './core/signals.js';

// Idempotency: the store token and the default store, the handler's transaction and context
export { IdempotencyStore } from './core/idempotency/idempotency-store.interface.js';
export type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStoreObserver,
  StoredResponse,
  TransactionalOutcome,
  TransactionalResult,
} from './core/idempotency/idempotency-store.interface.js';
export { InMemoryIdempotencyStore, type InMemoryIdempotencyStoreOptions } from './core/idempotency/in-memory-idempotency.store.js';
export { IdempotencyTransaction, currentIdempotencyContext, currentIdempotencyTransaction } from './idempotency/transaction-context.js';
export type { IdempotencyContext } from './core/idempotency/idempotency-core.interface.js';
export type { IdempotencyModuleOptions, IdempotentOptions } from './core/idempotency/idempotency-options.interface.js';
export { DEFAULT_REPLAY_HEADERS, storeBelow500 } from './core/idempotency/idempotency-options.interface.js';

// Errors an application catches or throws, with their type guards
export {
  AttemptTimeoutError,
  BulkheadRejectedError,
  CircuitOpenError,
  DeadlineExceededError,
  OperationAbortedError,
  ResilienceConfigError,
  ResilienceError,
  RetriesExhaustedError,
  isAttemptTimeoutError,
  isBulkheadRejectedError,
  isCircuitOpenError,
  isDeadlineExceededError,
  isOperationAbortedError,
  isResilienceConfigError,
  isResilienceError,
  isRetriesExhaustedError,
} from './core/errors.js';
export { IdempotencyError, IdempotencyErrorCode, isIdempotencyError, type IdempotencyErrorCodeValue } from './core/idempotency/idempotency-core.errors.js';
export { UpstreamHttpError, assertOk, isUpstreamHttpError, type UpstreamHttpErrorOptions } from './core/upstream-http.error.js';
export { RateLimitedError, isRateLimitedError } from './core/rate-limiter.js';

// Option types of the policies, and the sources of time and randomness they take
export type {
  BackoffDelegate,
  BackoffInfo,
  BackoffOptions,
  BreakerOpenReason,
  BulkheadOptions,
  CircuitBreakerOptions,
  CircuitBreakerStrategy,
  ConsecutiveBreakerStrategy,
  ConstantBackoffOptions,
  CountBreakerStrategy,
  DecorrelatedBackoffOptions,
  ErrorClass,
  ExponentialBackoffOptions,
  FallbackCause,
  FallbackOptions,
  Jitter,
  LinearBackoffOptions,
  RetryBudgetOptions,
  RetryBudgetWindow,
  RetryOptions,
  SlowCallOptions,
  TimeBreakerStrategy,
  TimeoutOptions,
} from './core/options.js';
export type { RateLimitOptions, RateOptions } from './core/rate-limiter.js';
export type { LastGoodOptions } from './core/last-good.js';
export type { CircuitBreakerSnapshot, CircuitBreakerState } from './core/circuit-breaker.policy.js';
export type { ResilienceEvent, ResilienceEventName, ResilienceEventSink } from './core/events.js';
export type { Clock, TimerHandle } from './core/clock.js';
export type { Random } from './core/random.js';

// Runtime chaos: the rules ResilienceModule.forRoot({ chaos }) and ResilienceService.chaos() take,
// and the error an injected exception carries
export type {
  ChaosExceptionFault,
  ChaosFault,
  ChaosHttpFault,
  ChaosLatencyFault,
  ChaosOptions,
  ChaosRule,
  ChaosRuleInit,
  ChaosTarget,
} from './core/fault-injection.js';
export { InjectedFaultError, isInjectedFault, isInjectedFaultError } from './core/injected-fault.js';
