import { HttpException } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { isResilienceError } from '../core/errors.js';
import { retryAfterSeconds } from '../core/retry-after.js';

/**
 * Base of the `type` URI of every problem the library answers with; the stable `code` is appended.
 * Change it with `forRoot({ problemTypeBase })`.
 * @publicApi
 */
export const DEFAULT_PROBLEM_TYPE_BASE = 'https://nest-resilience.dev/problems/';

/**
 * Media type of RFC 9457 problem details.
 * @publicApi
 */
export const PROBLEM_JSON_CONTENT_TYPE = 'application/problem+json';

/**
 * The RFC 9457 body the library sends for every error it produces.
 * @publicApi
 */
export interface ProblemDetails {
  /** URI naming the problem type: `<problemTypeBase><code>`. */
  readonly type: string;
  /** Short human-readable summary of the problem type. */
  readonly title: string;
  /** HTTP status code. */
  readonly status: number;
  /** Explanation specific to this occurrence. */
  readonly detail: string;
  /** Stable machine-readable code (`timeout`, `circuit_open`, `bulkhead_rejected`, …). */
  readonly code: string;
}

/**
 * What {@link ProblemDetailsException} is built from.
 * @publicApi
 */
export interface ProblemDetailsInit {
  /** HTTP status code of the response. */
  readonly status: number;
  /** Stable machine-readable code; also the last segment of `type`. */
  readonly code: string;
  /** Short summary; defaults to the reason phrase of `status`. */
  readonly title?: string;
  /** Explanation specific to this occurrence. */
  readonly detail: string;
  /** Extra response headers (`Retry-After`, …) applied by {@link applyProblemHeaders}. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * When a retry can succeed, in ms: sets `Retry-After` (whole seconds, rounded up) unless
   * `headers` has one, and is kept exact for callers that take milliseconds (RPC, GraphQL).
   */
  readonly retryAfterMs?: number;
  /** Full `type` URI; defaults to `typeBase + code`. */
  readonly type?: string;
  /** Base of the `type` URI. @default DEFAULT_PROBLEM_TYPE_BASE */
  readonly typeBase?: string;
  /** The error this problem reports, kept as `cause`. */
  readonly cause?: unknown;
}

/**
 * An `HttpException` whose response body is an RFC 9457 problem+json document. Nest's exception
 * filter sends the body; {@link applyProblemHeaders} must run first so that the response carries
 * `Content-Type: application/problem+json` and the extra headers (the library does it for you).
 * @example
 * throw new ProblemDetailsException({ status: 409, code: 'conflict', detail: 'A request with this key is in progress.' });
 * @publicApi
 */
export class ProblemDetailsException extends HttpException {
  /** The problem+json body. */
  readonly problem: ProblemDetails;
  /** Headers to set on the response besides `Content-Type`. */
  readonly headers: Readonly<Record<string, string>>;
  /** When a retry can succeed, in ms (from `init.retryAfterMs`, else from a `Retry-After` header in seconds). */
  readonly retryAfterMs?: number;

  constructor(init: ProblemDetailsInit) {
    const problem: ProblemDetails = {
      type: init.type ?? `${init.typeBase ?? DEFAULT_PROBLEM_TYPE_BASE}${init.code}`,
      title: init.title ?? STATUS_CODES[init.status] ?? 'Error',
      status: init.status,
      detail: init.detail,
      code: init.code,
    };
    super(problem, init.status, init.cause === undefined ? undefined : { cause: init.cause });
    this.problem = problem;
    const headers: Record<string, string> = { ...init.headers };
    const retryAfterMs = init.retryAfterMs;
    if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0) {
      this.retryAfterMs = retryAfterMs;
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'retry-after')) headers['retry-after'] = String(retryAfterSeconds(retryAfterMs));
    } else {
      const header = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
      if (header !== undefined && /^\d+$/.test(header)) this.retryAfterMs = Number(header) * 1000;
    }
    this.headers = headers;
  }
}

/**
 * Whether `error` is a {@link ProblemDetailsException} (also across duplicated module copies).
 * @publicApi
 */
export function isProblemDetailsException(error: unknown): error is ProblemDetailsException {
  if (error instanceof ProblemDetailsException) return true;
  if (!(error instanceof HttpException)) return false;
  const candidate = error as Partial<ProblemDetailsException>;
  return typeof candidate.problem === 'object' && candidate.problem !== null && typeof candidate.headers === 'object';
}

/**
 * Sets `Content-Type: application/problem+json` and the exception's extra headers on `response`
 * (an Express response, a Fastify reply or a raw `http.ServerResponse`). Does nothing once the
 * headers were sent.
 * @publicApi
 */
export function applyProblemHeaders(response: unknown, exception: ProblemDetailsException): void {
  const headers: Record<string, string> = { 'content-type': PROBLEM_JSON_CONTENT_TYPE, ...lowerCaseKeys(exception.headers) };
  const fastifyReply = response as { raw?: { headersSent?: boolean }; header?: (name: string, value: string) => unknown };
  if (fastifyReply?.raw && typeof fastifyReply.header === 'function') {
    if (fastifyReply.raw.headersSent) return;
    for (const [name, value] of Object.entries(headers)) fastifyReply.header(name, value);
    return;
  }
  const raw = response as { headersSent?: boolean; setHeader?: (name: string, value: string) => unknown };
  if (!raw || typeof raw.setHeader !== 'function' || raw.headersSent) return;
  for (const [name, value] of Object.entries(headers)) raw.setHeader(name, value);
}

function lowerCaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) result[name.toLowerCase()] = value;
  return result;
}

/**
 * How library errors become HTTP answers.
 * @internal
 */
export interface ProblemMappingOptions {
  /** Status of a deadline or attempt timeout. */
  readonly timeoutStatus: number;
  /** Status of a bulkhead rejection. */
  readonly bulkheadRejectStatus: number;
  /** Base of the `type` URI. */
  readonly typeBase: string;
}

const TITLES: Readonly<Record<string, string>> = {
  timeout: 'Request timed out',
  circuit_open: 'Dependency unavailable',
  bulkhead_rejected: 'Too many concurrent requests',
  retries_exhausted: 'Dependency failed',
  aborted: 'Request aborted',
};

/**
 * Turns a library error into the {@link ProblemDetailsException} the client receives:
 * timeouts → the configured status, `code: "timeout"`; open circuit → 503 `circuit_open` +
 * `Retry-After`; bulkhead rejection → 503/429 `bulkhead_rejected` + `Retry-After`; exhausted
 * retries → the mapping of the last error when it is an `HttpException` or a library error, else
 * 503 `retries_exhausted`; caller abort → 503 `aborted`. Any other error is returned unchanged.
 * @internal
 */
export function toHttpError(error: unknown, options: ProblemMappingOptions, depth = 0): unknown {
  if (isProblemDetailsException(error) || error instanceof HttpException) return error;
  const code = libraryErrorCode(error);
  if (code === undefined) return error;
  const message = error instanceof Error ? error.message : String(error);
  const problem = (status: number, problemCode: string, headers?: Record<string, string>) =>
    new ProblemDetailsException({
      status,
      code: problemCode,
      title: TITLES[problemCode],
      detail: message,
      headers,
      typeBase: options.typeBase,
      cause: error,
    });
  const retryAfter = (error as { retryAfterMs?: unknown }).retryAfterMs;
  const retryAfterHeader = typeof retryAfter === 'number' ? { 'retry-after': String(retryAfterSeconds(retryAfter)) } : undefined;
  switch (code) {
    case 'timeout':
    case 'attempt_timeout':
      return problem(options.timeoutStatus, 'timeout');
    case 'circuit_open':
      return problem(503, 'circuit_open', retryAfterHeader ?? { 'retry-after': '1' });
    case 'bulkhead_rejected':
      return problem(options.bulkheadRejectStatus, 'bulkhead_rejected', retryAfterHeader ?? { 'retry-after': '1' });
    case 'retries_exhausted': {
      const cause = (error as { cause?: unknown }).cause;
      if (depth < 3 && (cause instanceof HttpException || libraryErrorCode(cause) !== undefined)) {
        return toHttpError(cause, options, depth + 1);
      }
      return problem(503, 'retries_exhausted');
    }
    case 'aborted':
      return problem(503, 'aborted');
    default:
      return error;
  }
}

function libraryErrorCode(error: unknown): string | undefined {
  return isResilienceError(error) ? error.code : undefined;
}
