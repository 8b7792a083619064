import { isResilienceError, OperationAbortedError } from './errors.js';
import { isInjectedFaultError } from './injected-fault.js';
import { isUpstreamError } from './upstream-http.error.js';

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
]);

// undici codes that describe a misuse or a caller abort, not a sick network.
const NON_TRANSIENT_UNDICI_CODES = new Set([
  'UND_ERR_ABORTED',
  'UND_ERR_INVALID_ARG',
  'UND_ERR_INVALID_RETURN_VALUE',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
]);

const MAX_CAUSE_DEPTH = 5;

type Loose = Record<string, unknown> | undefined;

const asObject = (value: unknown): Loose =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;

const validStatus = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599 ? value : undefined;

/**
 * The HTTP status carried by an error: `status`, `statusCode`, `response.status` (axios, fetch
 * wrappers) or `getStatus()` (Nest `HttpException`).
 * @publicApi
 */
export function statusOf(error: unknown): number | undefined {
  const object = asObject(error);
  if (!object) return undefined;
  const direct = validStatus(object.status) ?? validStatus(object.statusCode) ?? validStatus(asObject(object.response)?.status);
  if (direct !== undefined) return direct;
  if (typeof object.getStatus === 'function') {
    try {
      return validStatus((object.getStatus as () => unknown).call(error));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

function isTransientCode(code: unknown): boolean {
  if (typeof code !== 'string') return false;
  if (TRANSIENT_NETWORK_CODES.has(code)) return true;
  return code.startsWith('UND_ERR_') && !NON_TRANSIENT_UNDICI_CODES.has(code);
}

/** Looks for a transient network code on the error, its `cause` chain (fetch) and `errors` (AggregateError). */
function hasTransientNetworkCode(error: unknown, depth = 0): boolean {
  const object = asObject(error);
  if (!object || depth > MAX_CAUSE_DEPTH) return false;
  if (isTransientCode(object.code)) return true;
  if (Array.isArray(object.errors) && object.errors.some((inner) => hasTransientNetworkCode(inner, depth + 1))) return true;
  return hasTransientNetworkCode(object.cause, depth + 1);
}

/**
 * The default retry classifier. Transient: network error codes (`ECONNRESET`, `ECONNREFUSED`,
 * `ETIMEDOUT`, `EPIPE`, `ENOTFOUND`, `EAI_AGAIN`, `ENETUNREACH`, `EHOSTUNREACH`, `ECONNABORTED`,
 * undici `UND_ERR_*` except misuse/abort codes) on the error or in its `cause` chain, HTTP 408, 429
 * and 5xx, `AttemptTimeoutError` and the `InjectedFaultError` of a chaos rule; an `UpstreamError` is
 * transient when its `retryable` says so. Never transient: other statuses, the library's other errors (open circuit, bulkhead rejection,
 * total deadline, caller abort) and `AbortError`s.
 * @publicApi
 */
export function isTransientError(error: unknown): boolean {
  if (isResilienceError(error)) return error.code === 'attempt_timeout';
  if (isUpstreamError(error)) return error.retryable;
  if (isInjectedFaultError(error)) return true;
  const object = asObject(error);
  if (!object) return false;
  if (object.name === 'AbortError') return false;
  const status = statusOf(error);
  if (status !== undefined) return isTransientStatus(status);
  return hasTransientNetworkCode(error);
}

/**
 * The error to raise when a signal (or cancellation token) was aborted by the caller: the reason itself when it is one of
 * the library's errors (a deadline, an attempt timeout), otherwise an `OperationAbortedError`.
 * @internal
 */
export function abortErrorOf(aborted: { readonly reason: unknown }): unknown {
  const reason: unknown = aborted.reason;
  return isResilienceError(reason) ? reason : new OperationAbortedError(reason);
}
