export * from './attempt-signal.decorator.js';
export * from './bulkhead.decorator.js';
export * from './circuit-breaker.decorator.js';
export { Fallback } from './fallback.decorator.js';
export * from './rate-limit.decorator.js';
export * from './retryable.decorator.js';
export * from './timeout.decorator.js';
export * from './use-policy.decorator.js';
