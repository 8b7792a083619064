import { systemClock, type Clock } from './clock.js';
import { retryAfterMsOf } from './classify.js';

const UPSTREAM_HTTP_ERROR = Symbol.for('nest-resilience.upstream-http-error');
const MAX_BODY_CHARS = 4096;

/**
 * Options of an {@link UpstreamHttpError}.
 * @publicApi
 */
export interface UpstreamHttpErrorOptions {
  /** The dependency's back-off hint (its `Retry-After`), in ms. */
  readonly retryAfterMs?: number;
  /** The response body (parsed JSON or text, truncated to 4096 characters). */
  readonly body?: unknown;
  /** The URL that was called, for the message. */
  readonly url?: string;
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/**
 * The dependency answered with a non-2xx HTTP status. Throw it (or use {@link assertOk}) when
 * wrapping `fetch`, so the retry classifier sees the status (408/429/5xx are retried) and the
 * `Retry-After` hint.
 * @example
 * const response = await fetch(url, { signal });
 * if (!response.ok) throw new UpstreamHttpError(response.status, { url });
 * @publicApi
 */
export class UpstreamHttpError extends Error {
  /** @internal marker that survives duplicated module copies (instanceof does not). */
  readonly [UPSTREAM_HTTP_ERROR] = true;
  /** The dependency's back-off hint, in ms, when it sent one. */
  readonly retryAfterMs?: number;
  /** The response body, when it was read. */
  readonly body?: unknown;

  constructor(
    /** The HTTP status the dependency answered with. */
    readonly status: number,
    options: UpstreamHttpErrorOptions = {},
  ) {
    super(`The dependency answered with HTTP status ${status}${options.url ? ` for ${options.url}` : ''}.`, {
      cause: options.cause,
    });
    this.name = 'UpstreamHttpError';
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.body !== undefined) this.body = options.body;
  }
}

/** Whether `error` is an {@link UpstreamHttpError}. @publicApi */
export function isUpstreamHttpError(error: unknown): error is UpstreamHttpError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[UPSTREAM_HTTP_ERROR] === true;
}

async function readBody(response: Response): Promise<unknown> {
  try {
    const text = (await response.text()).slice(0, MAX_BODY_CHARS);
    if (text === '') return undefined;
    if (response.headers.get('content-type')?.includes('json')) {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    return text;
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
