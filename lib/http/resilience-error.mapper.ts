import { HttpException, Inject, Injectable } from '@nestjs/common';
import { isResilienceError, type ResilienceError } from '../core/errors.js';
import { isTransientError, statusOf } from '../core/classify.js';
import type { Clock } from '../core/clock.js';
import { retryAfterMsOf } from '../core/retry-after.js';
import { isUpstreamError, isUpstreamHttpError, type UpstreamContractError, type UpstreamError } from '../core/upstream-http.error.js';
import { isIdempotencyError } from '../core/idempotency/idempotency-core.errors.js';
import { problemFromIdempotencyError } from './idempotency-problems.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { ProblemDetailsException, type ProblemDetailsInit } from './problem-details.js';

/**
 * What the caller knows about where an error surfaced.
 * @publicApi
 */
export interface ErrorMappingHints {
  /** HTTP status of a bulkhead rejection on this route (`@Bulkhead({ rejectStatus })`). @default 503 */
  readonly bulkheadRejectStatus?: number;
}

/** Stable `code`s of the problems the mapper answers with (besides the idempotency ones). @publicApi */
export const ResilienceProblemCode = {
  /** The deadline or an attempt timeout passed. */
  Timeout: 'timeout',
  /** The circuit breaker refused the call. */
  CircuitOpen: 'circuit_open',
  /** The bulkhead was full. */
  BulkheadRejected: 'bulkhead_rejected',
  /** A `@RateLimit()` turn would come after the call's deadline. */
  RateLimited: 'rate_limited',
  /** Every permitted attempt failed and nothing more specific is known. */
  RetriesExhausted: 'retries_exhausted',
  /** A dependency failed transiently (5xx, 408, 429, a network error) and no retry could fix it. */
  UpstreamUnavailable: 'upstream_unavailable',
  /** A dependency refused the request (a 4xx other than 408/429): retrying the same call cannot help. */
  UpstreamRejected: 'upstream_rejected',
  /** A dependency's answer did not match the expected schema (`UpstreamContractError`). */
  UpstreamContract: 'upstream_contract',
  /** The caller went away (the client disconnected). */
  Aborted: 'aborted',
  /** A resilience setting can never work. */
  ConfigInvalid: 'config_invalid',
} as const;

/**
 * What the error mapper reads of the module's resolved options (`ResolvedResilienceOptions` has
 * all of it: the mapper is constructed with them).
 * @publicApi
 */
export interface ErrorMapperSettings {
  /** The module's timeout settings that shape an answer. */
  readonly timeout: {
    /** The status a timed-out request answers with (`forRoot({ timeout: { status } })`). */
    readonly status: number;
  };
  /** Base of the problem `type` URI. */
  readonly problemTypeBase: string;
  /** Measures HTTP-date `Retry-After` hints. */
  readonly clock: Clock;
}

/** Retry-After of a transient failure that carries no hint of its own. */
const DEFAULT_RETRY_AFTER_MS = 1_000;
/** How deep `cause` chains are followed. */
const MAX_DEPTH = 3;

/**
 * The one place where errors become HTTP answers: every decorated route, the exception filter for
 * undecorated routes and the idempotency layer go through it. Defaults, all RFC 9457
 * problem+json with a stable `code` and a `detail` written for clients (an internal error message
 * is never sent verbatim):
 *
 * | error | answer |
 * | --- | --- |
 * | your own `HttpException` | passes through untouched |
 * | deadline or attempt timeout | `forRoot({ timeout: { status } })` (503), `timeout` |
 * | open circuit | 503 `circuit_open` + `Retry-After` (until the breaker lets a probe through) |
 * | bulkhead full | 503 (or the route's `rejectStatus`) `bulkhead_rejected` + `Retry-After` |
 * | `@RateLimit()` turn past the deadline (`RateLimitedError`) | 503 `rate_limited` + `Retry-After` (the wait) |
 * | dependency failed transiently (5xx/408/429 `UpstreamHttpError`, a network error), retry refused or exhausted | 503 `upstream_unavailable` + `Retry-After` (the dependency's, else 1 s) |
 * | dependency refused the call (another 4xx) | 502 `upstream_rejected` |
 * | dependency's answer broke its schema (`UpstreamContractError`) | 502 `upstream_contract`, listing the failing paths (never the payload) |
 * | an `HttpClient` call refused on this side (open circuit, full bulkhead, timeout, abort) | what the same library error gets above |
 * | an `HttpClient` call halted by the client's rate limit or a `Retry-After` pause | 503 `upstream_unavailable` + `Retry-After` |
 * | retries exhausted on anything else | 503 `retries_exhausted` + `Retry-After` |
 * | idempotency errors | their own status and `code` (400/409/422/500/503) |
 * | anything else | unchanged (Nest answers 500 without details) |
 *
 * Customise it like throttler's guard: extend the class, override {@link map} (or one of the
 * protected hooks) and pass it as `forRoot({ errorMapper: MyMapper })`.
 * @example
 * class MyMapper extends ResilienceErrorMapper {
 *   protected override upstreamRejected(error: unknown) {
 *     return this.problem({ status: 424, code: 'dependency_refused', detail: 'A partner refused the request.' }, error);
 *   }
 * }
 * @publicApi
 */
@Injectable()
export class ResilienceErrorMapper {
  constructor(
    /** The resolved module options the answers depend on: the timeout status, the problem type base, the clock. */
    @Inject(RESOLVED_RESILIENCE_OPTIONS) protected readonly options: ErrorMapperSettings,
  ) {}

  /**
   * What the client gets for `error`: a {@link ProblemDetailsException} for the library's errors
   * and for dependency failures, the error itself for everything else.
   */
  map(error: unknown, hints: ErrorMappingHints = {}): unknown {
    return this.mapDepth(error, hints, 0);
  }

  private mapDepth(error: unknown, hints: ErrorMappingHints, depth: number): unknown {
    if (error instanceof HttpException) return error;
    if (isResilienceError(error)) return this.libraryError(error, hints, depth);
    if (isUpstreamError(error) && !isUpstreamHttpError(error)) return this.upstreamFailure(error, hints, depth);
    if (isUpstreamHttpError(error) || statusOf(error) !== undefined) {
      const status = statusOf(error);
      if (status === undefined || status < 400) return error;
      return isTransientError(error) ? this.upstreamUnavailable(error) : this.upstreamRejected(error);
    }
    return isTransientError(error) ? this.upstreamUnavailable(error) : error;
  }

  private libraryError(error: ResilienceError, hints: ErrorMappingHints, depth: number): unknown {
    const withStatus = error as ResilienceError & { readonly retryAfterMs?: unknown };
    switch (error.code) {
      case 'timeout':
      case 'attempt_timeout':
        return this.problem({ status: this.options.timeout.status, code: 'timeout', title: 'Request timed out', detail: 'The request did not finish within its deadline; its work was cancelled.' }, error);
      case 'circuit_open':
        return this.problem(
          { status: 503, code: 'circuit_open', title: 'Dependency unavailable', detail: 'A dependency is failing, so the request was refused without calling it. Try again later.', retryAfterMs: retryAfterMsOr(withStatus.retryAfterMs) },
          error,
        );
      case 'bulkhead_rejected':
        return this.problem(
          { status: hints.bulkheadRejectStatus ?? 503, code: 'bulkhead_rejected', title: 'Too many concurrent requests', detail: 'The service is at its concurrency limit for this operation. Try again later.', retryAfterMs: retryAfterMsOr(withStatus.retryAfterMs) },
          error,
        );
      case 'rate_limited':
        return this.problem(
          { status: 503, code: 'rate_limited', title: 'Outgoing rate limit reached', detail: 'This operation is at its rate limit and its turn would come after its deadline. Try again later.', retryAfterMs: retryAfterMsOr(withStatus.retryAfterMs) },
          error,
        );
      case 'retries_exhausted': {
        const cause = error.cause;
        if (depth < MAX_DEPTH && cause !== undefined) {
          const mapped = this.mapDepth(cause, hints, depth + 1);
          if (mapped !== cause || cause instanceof HttpException) return mapped;
        }
        return this.problem({ status: 503, code: 'retries_exhausted', title: 'Dependency failed', detail: 'Every attempt of the request failed. Try again later.', retryAfterMs: DEFAULT_RETRY_AFTER_MS }, error);
      }
      case 'aborted':
        return this.problem({ status: 503, code: 'aborted', title: 'Request aborted', detail: 'The request was cancelled before it finished.' }, error);
      case 'config_invalid':
        return this.problem({ status: 500, code: 'config_invalid', title: 'Server misconfigured', detail: 'A resilience setting of this operation is invalid; the server log names the fix.' }, error);
      default:
        return isIdempotencyError(error) ? problemFromIdempotencyError(error, { typeBase: this.options.problemTypeBase }) : error;
    }
  }

  /**
   * An `HttpClient` failure other than a status: a contract break becomes 502 `upstream_contract`;
   * a timeout, open circuit, full bulkhead or abort is answered like the library error it wraps; a
   * network failure or a client-side halt becomes 503 `upstream_unavailable`.
   */
  private upstreamFailure(error: UpstreamError, hints: ErrorMappingHints, depth: number): unknown {
    if (error.code === 'contract') return this.upstreamContract(error as UpstreamContractError);
    const cause = error.cause;
    if (depth < MAX_DEPTH && isResilienceError(cause)) return this.libraryError(cause, hints, depth + 1);
    if (error.code === 'aborted') return this.problem({ status: 503, code: 'aborted', title: 'Request aborted', detail: 'The request was cancelled before it finished.' }, error);
    return this.upstreamUnavailable(error);
  }

  /** A dependency's answer broke its schema: 502 `upstream_contract` naming the failing paths (never the values). */
  protected upstreamContract(error: UpstreamContractError): unknown {
    const paths = error.paths.slice(0, 10);
    const more = error.paths.length > paths.length ? ` and ${error.paths.length - paths.length} more` : '';
    return this.problem(
      {
        status: 502,
        code: 'upstream_contract',
        title: 'Dependency broke its contract',
        detail: `A dependency of this service answered with data that does not match the expected schema at: ${paths.join(', ')}${more}.`,
      },
      error,
    );
  }

  /** A dependency failed transiently and no retry could fix it: 503 `upstream_unavailable` + `Retry-After`. */
  protected upstreamUnavailable(error: unknown): unknown {
    return this.problem(
      { status: 503, code: 'upstream_unavailable', title: 'Dependency unavailable', detail: 'A dependency of this service is temporarily unavailable. Try again later.', retryAfterMs: retryAfterMsOr(retryAfterMsOf(error, this.options.clock.now())) },
      error,
    );
  }

  /** A dependency refused the request (a non-retryable 4xx): 502 `upstream_rejected`. */
  protected upstreamRejected(error: unknown): unknown {
    return this.problem({ status: 502, code: 'upstream_rejected', title: 'Dependency refused the request', detail: 'A dependency of this service refused the request.' }, error);
  }

  /** Builds a problem with the configured `type` base, keeping `error` as its cause (for logs, never sent). */
  protected problem(init: Omit<ProblemDetailsInit, 'typeBase' | 'cause'>, error: unknown): ProblemDetailsException {
    return new ProblemDetailsException({ ...init, typeBase: this.options.problemTypeBase, cause: error });
  }
}

/** A positive retry hint, else the default one (a transient failure always carries a hint). */
function retryAfterMsOr(ms: unknown): number {
  return typeof ms === 'number' && ms > 0 ? ms : DEFAULT_RETRY_AFTER_MS;
}
