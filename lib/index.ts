/**
 * `nest-resilience`: `ResilienceModule`, the decorators (`@Timeout`, `@Retryable`, `@Idempotent`,
 * `@CircuitBreaker`, `@Bulkhead`, `@Fallback`, `@UsePolicy`, `@AttemptSignal`), the services, the
 * error mapper and the request context, plus everything `nest-resilience/core` exports.
 * Guides: docs/README.md in the repository.
 * @module nest-resilience
 */
// Root entry point. Never import typeorm or @nestjs/terminus from here (optional peers):
// those live behind the `nest-resilience/typeorm` and `nest-resilience/health` subpaths.
export * from './core/index.js';
export * from './observability/index.js';
export * from './core/idempotency/idempotency-store.interface.js';
export * from './idempotency/index.js';

// Nest adapter: module, decorators, error mapper, services, request context, outbound helpers.
export { ResilienceModule } from './resilience.module.js';
export { RESILIENCE_MODULE_OPTIONS } from './resilience.module-definition.js';
export { RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS } from './resilience.constants.js';
export * from './interfaces/index.js';
export * from './decorators/index.js';
export {
  ResilienceErrorMapper,
  ResilienceProblemCode,
  type ErrorMapperSettings,
  type ErrorMappingHints,
} from './http/resilience-error.mapper.js';
export { CircuitBreakerService, UnknownCircuitBreakerError } from './engine/circuit-breaker.service.js';
export { ResilienceService } from './engine/resilience.service.js';
export { Resilience, currentSignal, getRequestInfo, type RequestInfo, type ResilienceCurrent } from './context/resilience-context.js';
export type { ResilienceContextType } from './contexts/context-adapter.js';
export type { RpcProblem } from './contexts/rpc.context.js';
export type { GraphQLProblemExtensions } from './contexts/graphql.context.js';
export type { WsProblem } from './contexts/ws.context.js';
export { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER, resilientFetch, withDeadline } from './fetch/with-deadline.js';
export {
  DEFAULT_PROBLEM_TYPE_BASE,
  PROBLEM_JSON_CONTENT_TYPE,
  ProblemDetailsException,
  applyProblemHeaders,
  isProblemDetailsException,
  type ProblemDetails,
  type ProblemDetailsInit,
} from './http/problem-details.js';
