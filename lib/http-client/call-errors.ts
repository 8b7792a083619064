import { isTransientError } from '../core/classify.js';
import { isResilienceError } from '../core/errors.js';
import { errorTypeOf } from '../core/events.js';
import { isUpstreamError, UpstreamError } from '../core/upstream-http.error.js';
import type { CallState } from './call-state.js';
import type { GateRefusal } from './origin-gate.js';

/**
 * What a request that got no answer fails with: an `UpstreamError` of code `network` (retryable
 * when the cause is transient), unless it already is one of the library's errors.
 * @internal
 */
export function networkError(error: unknown, state: CallState, client: string): unknown {
  if (isResilienceError(error) || isUpstreamError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new UpstreamError('network', `The call of client "${client}" to ${state.origin} failed before an answer arrived: ${message}`, {
    retryable: isTransientError(error),
    cause: error,
    client,
    method: state.method,
    url: state.href,
  });
}

/**
 * Turns whatever ended the call into an {@link UpstreamError} carrying the number of requests sent.
 * @internal
 */
export function toUpstreamError(error: unknown, state: CallState, client: string): UpstreamError {
  let cause = error;
  if (isResilienceError(cause) && cause.code === 'retries_exhausted') cause = cause.cause;
  if (isUpstreamError(cause)) {
    cause.attempts = state.sent;
    return cause;
  }
  const common = { client, method: state.method, url: state.href, attempts: state.sent, cause };
  const who = `The call of client "${client}" to ${state.origin}`;
  if (isResilienceError(cause)) {
    const withHint = cause as { retryAfterMs?: number };
    switch (cause.code) {
      case 'attempt_timeout':
        return new UpstreamError('timeout', `${who} timed out: ${cause.message}`, { ...common, retryable: true });
      case 'timeout':
        return new UpstreamError('timeout', `${who} did not finish within its deadline: ${cause.message}`, common);
      case 'circuit_open':
        return new UpstreamError('circuit_open', `${who} was not sent: ${cause.message}`, { ...common, retryAfterMs: withHint.retryAfterMs });
      case 'bulkhead_rejected':
        return new UpstreamError('bulkhead_rejected', `${who} was not sent: ${cause.message}`, { ...common, retryAfterMs: withHint.retryAfterMs });
      case 'aborted':
        return new UpstreamError('aborted', `${who} was aborted by its caller.`, common);
    }
  }
  return new UpstreamError('network', `${who} failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
    ...common,
    retryable: isTransientError(cause),
  });
}

/**
 * The `error.type` of a request's telemetry: the HTTP status of an error answer, else the error's code.
 * @internal
 */
export function errorTypeLabel(error: unknown): string {
  if (isUpstreamError(error)) return error.status !== undefined && error.code === 'http_status' ? String(error.status) : error.code;
  return errorTypeOf(error) ?? 'unknown';
}

/**
 * The error of a call its origin gate would hold past the call's deadline: `rate_limited`, nothing sent.
 * @internal
 */
export function gateRefusalError(refusal: GateRefusal, state: CallState, client: string): UpstreamError {
  const seconds = Math.ceil(refusal.refusedForMs / 1000);
  const why =
    refusal.reason === 'halted'
      ? `${state.origin} asked for a pause (Retry-After) of another ${seconds} s`
      : `the client's rate limit for ${state.origin} would delay it by ${refusal.refusedForMs} ms`;
  return new UpstreamError('rate_limited', `The call of client "${client}" was not sent: ${why}, which ends after the call's deadline. Retry later or give the call a longer deadline.`, {
    retryAfterMs: refusal.refusedForMs,
    attempts: 0,
    client,
    method: state.method,
    url: state.href,
  });
}
