import { retryAfterSeconds } from '../core/retry-after.js';
import { ProblemDetailsException } from './problem-details.js';
import {
  IdempotencyKeyInvalidError,
  IdempotencyKeyMissingError,
  IdempotencyKeyReusedError,
  IdempotencyRequestInProgressError,
  IdempotencyResponseNotStorableError,
  IdempotencyStoreUnavailableError,
  type IdempotencyError,
} from '../core/idempotency/idempotency-core.errors.js';

// Defined with the framework-free error classes; re-exported here, where it always lived.
export { IdempotencyErrorCode } from '../core/idempotency/idempotency-core.errors.js';

/** Options shared by the factories below. @publicApi */
export interface ProblemOptions {
  /** Base of the problem `type` URI (`forRoot({ problemTypeBase })`). */
  readonly typeBase?: string;
}

/**
 * The problem+json exception answering an {@link IdempotencyError} of the idempotency core: same
 * status, `code`, `title` and client-safe `detail`, `Retry-After` when the error has `retryAfterMs`,
 * and the error's own `cause` (the store's error of a 503) as `cause`.
 * @example
 * if (answer.kind === 'rejected') throw problemFromIdempotencyError(answer.error, { typeBase });
 * @publicApi
 */
export function problemFromIdempotencyError(error: IdempotencyError, options: ProblemOptions = {}): ProblemDetailsException {
  return new ProblemDetailsException({
    status: error.status,
    code: error.code,
    title: error.title,
    detail: error.detail,
    ...(error.retryAfterMs === undefined ? {} : { headers: { 'Retry-After': String(retryAfterSeconds(error.retryAfterMs)) }, retryAfterMs: error.retryAfterMs }),
    typeBase: options.typeBase,
    cause: error.cause,
  });
}

/** 400 `idempotency_key_missing`. @publicApi */
export function idempotencyKeyMissing(header: string, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyKeyMissingError(header), options);
}

/** 400 `idempotency_key_invalid`; `reason` says what is wrong with the value. @publicApi */
export function idempotencyKeyInvalid(header: string, reason: string, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyKeyInvalidError(header, reason), options);
}

/** 409 `idempotency_request_in_progress` with `Retry-After` = the remaining lease. @publicApi */
export function idempotencyRequestInProgress(header: string, retryAfterMs: number, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyRequestInProgressError(header, retryAfterMs), options);
}

/** 422 `idempotency_key_reused`: same key, different request. @publicApi */
export function idempotencyKeyReused(header: string, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyKeyReusedError(header), options);
}

/** 503 `idempotency_store_unavailable` with `Retry-After`; the request was not executed. @publicApi */
export function idempotencyStoreUnavailable(retryAfterMs: number, cause: unknown, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyStoreUnavailableError(retryAfterMs, cause), options);
}

/** 500 `idempotency_response_not_storable` (transactional mode only). @publicApi */
export function idempotencyResponseNotStorable(reason: string, options: ProblemOptions = {}): ProblemDetailsException {
  return problemFromIdempotencyError(new IdempotencyResponseNotStorableError(reason), options);
}
