import { systemClock, type Clock } from './clock.js';
import { retryAfterMsOf } from './retry-after.js';
import { errorBodyOf } from './error-body.js';

const UPSTREAM_ERROR = Symbol.for('nest-resilience.upstream-error');
const UPSTREAM_HTTP_ERROR = Symbol.for('nest-resilience.upstream-http-error');

/**
 * What went wrong with a call to a dependency (the `code` of an {@link UpstreamError}):
 * - `http_status`: it answered with a non-2xx status ({@link UpstreamHttpError});
 * - `network`: the connection failed (refused, reset, DNS, socket closed);
 * - `timeout`: an attempt timeout or the call's deadline passed;
 * - `contract`: the answer did not match the expected schema or was not JSON ({@link UpstreamContractError});
 * - `circuit_open`, `bulkhead_rejected`, `rate_limited`: the call was refused on this side, without being sent;
 * - `aborted`: the caller gave up (client disconnect, parent signal).
 * @publicApi
 */
export type UpstreamErrorCode =
  | 'http_status'
  | 'network'
  | 'timeout'
  | 'contract'
  | 'circuit_open'
  | 'bulkhead_rejected'
  | 'rate_limited'
  | 'aborted';

/**
 * Options of an {@link UpstreamError}.
 * @publicApi
 */
export interface UpstreamErrorOptions {
  /** Whether retrying the same call may succeed. @default false */
  readonly retryable?: boolean;
  /** How many requests were sent for the call (hedges and retries included). @default 1 */
  readonly attempts?: number;
  /** The dependency's back-off hint (its `Retry-After`), or how long this side refuses calls, in ms. */
  readonly retryAfterMs?: number;
  /** Name of the client that made the call (`ResilientHttpModule` clients). */
  readonly client?: string;
  /** HTTP method of the call. */
  readonly method?: string;
  /** The URL that was called (for logs; never sent to the caller's clients). */
  readonly url?: string;
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/**
 * Base of every failure of a call to a dependency: one type to catch, with a stable `code`, the
 * `status` when the dependency answered, whether a retry may help, and how many requests were sent.
 * The library's error mapper turns it into a problem+json answer (see docs/errors.md);
 * the retry classifier follows `retryable`.
 * @example
 * try { await client.get('/reports/1'); }
 * catch (error) { if (isUpstreamError(error) && error.code === 'timeout') return cached; throw error; }
 * @publicApi
 */
export class UpstreamError extends Error {
  /** @internal marker that survives duplicated module copies (instanceof does not). */
  readonly [UPSTREAM_ERROR] = true;
  /** Stable code of the failure. */
  readonly code: UpstreamErrorCode;
  /** Whether retrying the same call may succeed (408/429/5xx, network errors, attempt timeouts). */
  readonly retryable: boolean;
  /**
   * How many requests were sent for the call, retries and hedges included (0 when it was refused
   * before anything was sent). Set by the client once the call ends.
   */
  attempts: number;
  /** The HTTP status the dependency answered with, when it answered. */
  readonly status?: number;
  /** The back-off hint, in ms, when there is one. */
  readonly retryAfterMs?: number;
  /** Name of the client that made the call. */
  readonly client?: string;
  /** HTTP method of the call. */
  readonly method?: string;
  /** The URL that was called. */
  readonly url?: string;

  constructor(code: UpstreamErrorCode, message: string, options: UpstreamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.attempts = options.attempts ?? 1;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.client !== undefined) this.client = options.client;
    if (options.method !== undefined) this.method = options.method;
    if (options.url !== undefined) this.url = options.url;
  }
}

/** Whether `error` is an {@link UpstreamError} (any of the family). @publicApi */
export function isUpstreamError(error: unknown): error is UpstreamError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[UPSTREAM_ERROR] === true;
}

/**
 * Options of an {@link UpstreamHttpError}.
 * @publicApi
 */
export interface UpstreamHttpErrorOptions extends Omit<UpstreamErrorOptions, 'retryable'> {
  /** The response body (parsed JSON or text, truncated to 4096 characters). */
  readonly body?: unknown;
  /** Response headers, when known (kept for custom classifiers; never sent to the caller's clients). */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

/** Whether a status is worth retrying: 408, 429 and 5xx. */
function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/**
 * The dependency answered with a non-2xx HTTP status (`code: 'http_status'`; 408/429/5xx are
 * `retryable`). The `HttpClient` of `nest-resilience/http` throws it; throw it yourself (or use
 * {@link assertOk}) when wrapping `fetch`, so the retry classifier sees the status and the
 * `Retry-After` hint.
 * @example
 * const response = await fetch(url, { signal });
 * if (!response.ok) throw new UpstreamHttpError(response.status, { url });
 * @publicApi
 */
export class UpstreamHttpError extends UpstreamError {
  /** @internal marker that survives duplicated module copies (instanceof does not). */
  readonly [UPSTREAM_HTTP_ERROR] = true;
  /** The response body, when it was read. */
  readonly body?: unknown;
  /** The response headers, when known. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;

  constructor(
    /** The HTTP status the dependency answered with. */
    override readonly status: number,
    options: UpstreamHttpErrorOptions = {},
  ) {
    super('http_status', `The dependency answered with HTTP status ${status}${options.url ? ` for ${options.url}` : ''}.`, {
      ...options,
      retryable: isTransientStatus(status),
    });
    if (options.body !== undefined) this.body = options.body;
    if (options.headers !== undefined) this.headers = options.headers;
  }
}

/** Whether `error` is an {@link UpstreamHttpError}. @publicApi */
export function isUpstreamHttpError(error: unknown): error is UpstreamHttpError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[UPSTREAM_HTTP_ERROR] === true;
}

/**
 * One place where a dependency's answer broke its contract: the path (`$.items[0].id`) and the
 * validator's message. Messages can quote the offending value: they are for logs, and the
 * problem+json answer lists the paths only.
 * @publicApi
 */
export interface UpstreamContractIssue {
  /** JSONPath-like location of the failure, `$` for the whole body. */
  readonly path: string;
  /** The validator's message. */
  readonly message: string;
}

/**
 * The dependency answered 2xx, but its body did not match the call's `schema` (or was not JSON when
 * a schema expected JSON). Not retryable: the same call gets the same answer. Mapped to a 502
 * `upstream_contract` problem that lists the failing paths and never echoes the payload.
 * @publicApi
 */
export class UpstreamContractError extends UpstreamError {
  constructor(
    /** The HTTP status of the answer that broke the contract. */
    override readonly status: number,
    /** Where the answer broke the contract (at most the first 20 issues). */
    readonly issues: readonly UpstreamContractIssue[],
    options: Omit<UpstreamErrorOptions, 'retryable'> = {},
  ) {
    super(
      'contract',
      `The dependency's answer${options.url ? ` from ${options.url}` : ''} did not match the expected schema at ${issues.map((issue) => issue.path).join(', ') || '$'}.`,
      options,
    );
  }

  /** The failing paths, without duplicates, in order. */
  get paths(): string[] {
    return [...new Set(this.issues.map((issue) => issue.path))];
  }
}

/** Whether `error` is an {@link UpstreamContractError}. @publicApi */
export function isUpstreamContractError(error: unknown): error is UpstreamContractError {
  return isUpstreamError(error) && error.code === 'contract';
}

async function readBody(response: Response): Promise<unknown> {
  try {
    return errorBodyOf(await response.text(), response.headers.get('content-type'));
  } catch {
    return undefined;
  }
}

/**
 * Returns `response` when its status is 2xx; otherwise reads its body and throws an
 * {@link UpstreamHttpError} carrying the status, the body and the parsed `Retry-After`.
 * @param clock measures HTTP-date `Retry-After` values. @default systemClock
 * @example
 * const report = await assertOk(await fetch(url, { signal })).then((r) => r.json());
 * @publicApi
 */
export async function assertOk(response: Response, clock: Clock = systemClock): Promise<Response> {
  if (response.ok) return response;
  const retryAfterMs = retryAfterMsOf({ headers: response.headers }, clock.now());
  const body = await readBody(response);
  throw new UpstreamHttpError(response.status, { retryAfterMs, body, url: response.url || undefined });
}
