import { ProblemDetailsException, retryAfterSeconds } from '../http/problem-details.js';

/**
 * Stable `code` values of the problems the idempotency layer answers with.
 * @publicApi
 */
export const IdempotencyErrorCode = {
  /** 400: the route requires a key and none was sent. */
  KeyMissing: 'idempotency_key_missing',
  /** 400: the key is not 1–255 printable ASCII characters or not a single RFC 8941 string/token. */
  KeyInvalid: 'idempotency_key_invalid',
  /** 409: a request with this key is still running; retry later with the same key. */
  RequestInProgress: 'idempotency_request_in_progress',
  /** 422: the key was already used for a different request. */
  KeyReused: 'idempotency_key_reused',
  /** 503: the idempotency store is unreachable; the request was not executed. */
  StoreUnavailable: 'idempotency_store_unavailable',
  /** 500: transactional mode could not store the response, so the handler's writes were rolled back. */
  ResponseNotStorable: 'idempotency_response_not_storable',
} as const;

/** Options shared by the factories below. @internal */
export interface ProblemOptions {
  /** Base of the problem `type` URI (`forRoot({ problemTypeBase })`). */
  readonly typeBase?: string;
}

/** 400 `idempotency_key_missing`. @publicApi */
export function idempotencyKeyMissing(header: string, options: ProblemOptions = {}): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 400,
    code: IdempotencyErrorCode.KeyMissing,
    title: `${header} is missing`,
    detail: `This operation is idempotent and requires an ${header} header: send a new unique key (a UUID) with each new request, and the same key only when retrying it.`,
    typeBase: options.typeBase,
  });
}

/** 400 `idempotency_key_invalid`; `reason` says what is wrong with the value. @publicApi */
export function idempotencyKeyInvalid(header: string, reason: string, options: ProblemOptions = {}): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 400,
    code: IdempotencyErrorCode.KeyInvalid,
    title: `${header} is invalid`,
    detail: `The ${header} header was refused: ${reason}. Send one RFC 8941 string or token of 1 to 255 printable ASCII characters, such as a UUID.`,
    typeBase: options.typeBase,
  });
}

/** 409 `idempotency_request_in_progress` with `Retry-After` = the remaining lease. @publicApi */
export function idempotencyRequestInProgress(header: string, retryAfterMs: number, options: ProblemOptions = {}): ProblemDetailsException {
  const seconds = retryAfterSeconds(retryAfterMs);
  return new ProblemDetailsException({
    status: 409,
    code: IdempotencyErrorCode.RequestInProgress,
    title: `A request is outstanding for this ${header}`,
    detail: `A request with this ${header} is still being processed. Retry in ${seconds} s with the same key to receive its response.`,
    headers: { 'Retry-After': seconds },
    typeBase: options.typeBase,
  });
}

/** 422 `idempotency_key_reused`: same key, different request. @publicApi */
export function idempotencyKeyReused(header: string, options: ProblemOptions = {}): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 422,
    code: IdempotencyErrorCode.KeyReused,
    title: `${header} is already used`,
    detail: `This ${header} was already used for a different request (method, path, query or body differ). Send a new key for a new request; reuse a key only to retry the identical request.`,
    typeBase: options.typeBase,
  });
}

/** 503 `idempotency_store_unavailable` with `Retry-After`; the request was not executed. @publicApi */
export function idempotencyStoreUnavailable(retryAfterMs: number, cause: unknown, options: ProblemOptions = {}): ProblemDetailsException {
  const seconds = retryAfterSeconds(retryAfterMs);
  return new ProblemDetailsException({
    status: 503,
    code: IdempotencyErrorCode.StoreUnavailable,
    title: 'Idempotency store unavailable',
    detail: `The request was not executed because its idempotency key could not be recorded. Retry in ${seconds} s with the same key.`,
    headers: { 'Retry-After': seconds },
    typeBase: options.typeBase,
    cause,
  });
}

/** 500 `idempotency_response_not_storable` (transactional mode only). @publicApi */
export function idempotencyResponseNotStorable(reason: string, options: ProblemOptions = {}): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 500,
    code: IdempotencyErrorCode.ResponseNotStorable,
    title: 'Response could not be stored',
    detail: `The response of this transactional idempotent request could not be stored (${reason}), so its database writes were rolled back and nothing happened. Retrying with the same key runs it again.`,
    typeBase: options.typeBase,
  });
}
