import { isResilienceError, OperationAbortedError } from './errors.js';
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
 * and 5xx, and `AttemptTimeoutError`; an `UpstreamError` is transient when its `retryable` says so.
 * Never transient: other statuses, the library's other errors (open circuit, bulkhead rejection,
 * total deadline, caller abort) and `AbortError`s.
 * @publicApi
 */
export function isTransientError(error: unknown): boolean {
  if (isResilienceError(error)) return error.code === 'attempt_timeout';
  if (isUpstreamError(error)) return error.retryable;
  const object = asObject(error);
  if (!object) return false;
  if (object.name === 'AbortError') return false;
  const status = statusOf(error);
  if (status !== undefined) return isTransientStatus(status);
  return hasTransientNetworkCode(error);
}

function parseRetryAfterValue(value: unknown, now: number): number | undefined {
  if (Array.isArray(value)) return parseRetryAfterValue(value[0], now);
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names a weekday or month, which rules out bare numbers parsed as years.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  const delta = at - now;
  return delta >= 0 ? delta : undefined;
}

function parseMilliseconds(value: unknown): number | undefined {
  if (Array.isArray(value)) return parseMilliseconds(value[0]);
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : undefined;
}

function headerOf(headers: unknown, name: string): unknown {
  const object = asObject(headers);
  if (!object) return undefined;
  if (typeof object.get === 'function') {
    try {
      return (object.get as (name: string) => unknown).call(headers, name) ?? undefined;
    } catch {
      return undefined;
    }
  }
  for (const key of Object.keys(object)) if (key.toLowerCase() === name) return object[key];
  return undefined;
}

function retryAfterFromHeaders(headers: unknown, now: number): number | undefined {
  const milliseconds = parseMilliseconds(headerOf(headers, 'retry-after-ms'));
  if (milliseconds !== undefined) return milliseconds;
  const value = headerOf(headers, 'retry-after');
  return value === undefined || value === null ? undefined : parseRetryAfterValue(value, now);
}

function retryAfterFromHttpException(object: Record<string, unknown>, now: number): number | undefined {
  if (typeof object.getResponse !== 'function') return undefined;
  try {
    const body = asObject((object.getResponse as () => unknown).call(object));
    return body ? parseRetryAfterValue(body.retryAfter, now) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The server's back-off hint, in ms: `error.retryAfterMs` (the library's errors), then the
 * `Retry-After` (delta-seconds or HTTP-date, RFC 9110 §10.2.3) or `retry-after-ms` header of
 * `error.headers` or `error.response.headers` (plain objects, axios headers or fetch `Headers`), then
 * `retryAfter` (seconds or HTTP-date) in a Nest `HttpException`'s response object. HTTP-dates are
 * measured from `now`, which comes from the policy clock. Invalid or past values give `undefined`.
 * @publicApi
 */
export function retryAfterMsOf(error: unknown, now: number): number | undefined {
  const object = asObject(error);
  if (!object) return undefined;
  const own = object.retryAfterMs;
  if (typeof own === 'number') return Number.isFinite(own) && own >= 0 ? own : undefined;
  return (
    retryAfterFromHeaders(object.headers, now) ??
    retryAfterFromHeaders(asObject(object.response)?.headers, now) ??
    retryAfterFromHttpException(object, now)
  );
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
