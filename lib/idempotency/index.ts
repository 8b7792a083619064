export * from '../core/idempotency/idempotency-store.interface.js';
export * from '../core/idempotency/idempotency-options.interface.js';
export { Idempotent } from './idempotent.decorator.js';
export { parseIdempotencyKey, validateIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, type IdempotencyKeyParseResult } from '../core/idempotency/idempotency-key.js';
export {
  requestFingerprint,
  canonicalJson,
  DEFAULT_FINGERPRINT_LIMITS,
  FingerprintLimitError,
  type FingerprintInput,
  type FingerprintLimits,
} from '../core/idempotency/fingerprint.js';
export {
  IdempotencyErrorCode,
  idempotencyKeyMissing,
  idempotencyKeyInvalid,
  idempotencyRequestInProgress,
  idempotencyKeyReused,
  idempotencyStoreUnavailable,
  idempotencyResponseNotStorable,
  type ProblemOptions,
} from '../http/idempotency-problems.js';
export {
  IdempotencyTransaction,
  currentIdempotencyTransaction,
  currentIdempotencyContext,
  type IdempotencyContext,
} from './transaction-context.js';
export {
  DEFAULT_IN_MEMORY_MAX_BYTES,
  DEFAULT_IN_MEMORY_MAX_RECORDS,
  InMemoryIdempotencyStore,
  type InMemoryIdempotencyStoreOptions,
} from '../core/idempotency/in-memory-idempotency.store.js';
export { recordIdOf } from '../core/idempotency/record-id.js';
export { startPurger, type IdempotencyPurgerOptions } from './idempotency-purger.js';
