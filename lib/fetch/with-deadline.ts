import { Resilience, onAttemptSettled } from '../context/resilience-context.js';
import { linkAbort } from '../core/signals.js';

/**
 * Header carrying the caller's remaining budget in ms, so the next service can set its own deadline.
 * @publicApi
 */
export const REQUEST_TIMEOUT_HEADER = 'x-request-timeout-ms';

/**
 * Header carrying the id of the request being served.
 * @publicApi
 */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * Adds the current attempt's `AbortSignal` and deadline to a `fetch` `RequestInit`: the outgoing
 * call is cancelled when the attempt times out, the deadline passes or the client disconnects.
 * Sets `x-request-timeout-ms` (remaining budget, when there is a deadline) and `x-request-id`
 * (when known, unless already set). A signal already in `init` is kept: either one aborts the call.
 * Outside a decorated route or method, returns `init` unchanged.
 * @example
 * const res = await fetch(`${modelUrl}/generate`, withDeadline({ method: 'POST', body }));
 * @publicApi
 */
export function withDeadline(init: RequestInit = {}): RequestInit {
  const current = Resilience.current();
  if (!current) return init;
  const headers = new Headers(init.headers);
  const remaining = current.remaining();
  if (Number.isFinite(remaining)) headers.set(REQUEST_TIMEOUT_HEADER, String(Math.max(0, Math.floor(remaining))));
  if (current.requestId !== undefined && !headers.has(REQUEST_ID_HEADER)) headers.set(REQUEST_ID_HEADER, current.requestId);
  return { ...init, headers, signal: combinedSignal(current.signal, init.signal ?? undefined) };
}

/**
 * `fetch(input, withDeadline(init))`: a `fetch` that follows the current attempt's signal and
 * deadline.
 * @example
 * const res = await resilientFetch('http://model.internal/generate', { method: 'POST', body });
 * @publicApi
 */
export function resilientFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  return fetch(input, withDeadline(init));
}

/**
 * A signal aborted by either `attempt` or `own`. The listeners on both are removed as soon as
 * either aborts or the attempt settles, so a long-lived `own` signal never accumulates listeners.
 */
function combinedSignal(attempt: AbortSignal, own: AbortSignal | undefined): AbortSignal {
  if (!own || own === attempt) return attempt;
  const link = linkAbort(attempt);
  const onOwnAbort = () => link.abort(own.reason);
  const dispose = () => {
    link.dispose();
    own.removeEventListener('abort', onOwnAbort);
  };
  if (own.aborted) link.abort(own.reason);
  else own.addEventListener('abort', onOwnAbort, { once: true });
  if (link.signal.aborted) dispose();
  else {
    link.signal.addEventListener('abort', dispose, { once: true });
    onAttemptSettled(dispose);
  }
  return link.signal;
}
