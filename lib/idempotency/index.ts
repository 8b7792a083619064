export * from './idempotency-store.interface.js';
export * from './idempotency-options.interface.js';
export { Idempotent } from './idempotent.decorator.js';
export { parseIdempotencyKey, validateIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, type IdempotencyKeyParseResult } from './idempotency-key.js';
export {
  requestFingerprint,
  canonicalJson,
  DEFAULT_FINGERPRINT_LIMITS,
  FingerprintLimitError,
  type FingerprintInput,
  type FingerprintLimits,
} from './fingerprint.js';
export {
  IdempotencyErrorCode,
  idempotencyKeyMissing,
  idempotencyKeyInvalid,
  idempotencyRequestInProgress,
  idempotencyKeyReused,
  idempotencyStoreUnavailable,
  idempotencyResponseNotStorable,
  type ProblemOptions,
} from './idempotency.errors.js';
export {
  IdempotencyTransaction,
  currentIdempotencyTransaction,
  currentIdempotencyContext,
  type IdempotencyContext,
} from './transaction-context.js';
export { InMemoryIdempotencyStore, type InMemoryIdempotencyStoreOptions } from './in-memory-idempotency.store.js';
export { recordIdOf } from './record-id.js';
export { startPurger, type IdempotencyPurgerOptions } from './idempotency-purger.js';
