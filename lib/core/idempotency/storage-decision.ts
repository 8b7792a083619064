import { errorTypeOf } from '../events.js';
import type { HandlerOutcome, IdempotentResponse } from './idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from './idempotency-options.interface.js';
import type { StoredResponse } from './idempotency-store.interface.js';
import { encodeError, encodeValue, isHttpErrorLike, responseWithoutBody, type NotStorable } from './response-encoding.js';

/**
 * What to do with the key once the outcome is known; `notKept`: the response is stored without
 * its body, and why.
 * @internal
 */
export type Decision =
  | { readonly action: 'store'; readonly response: StoredResponse; readonly notKept?: NotStorable }
  | { readonly action: 'release'; readonly reason: string; readonly detail: string; readonly warn: boolean };

/** Release reason of a status `storeIf` does not store (in transactional mode: the writes were rolled back although the handler succeeded). @internal */
export const NOT_STORED = 'not_stored';

/**
 * The storage policy: whether a handler's outcome is stored (and what), or the key released (and
 * why). Stored: values and HTTP errors whose status `storeIf` accepts; a body over
 * `maxResponseBytes`, a stream or another unreplayable result is stored without its body (its key
 * completes all the same, so the handler never runs again). Released: crashes, errors in
 * transactional mode (rolled back), values a fallback produced, statuses `storeIf` refuses.
 * @internal
 */
export function decideStorage(options: ResolvedIdempotencyOptions, response: IdempotentResponse, outcome: HandlerOutcome, transactional: boolean): Decision {
  if (outcome.kind === 'error') {
    const { error } = outcome;
    if (transactional) return release('error', `the handler failed with ${errorTypeOf(error)}; its writes were rolled back`, false);
    if (!isHttpErrorLike(error)) return release('crash', `the handler failed with ${errorTypeOf(error)}`, false);
    const status = error.getStatus();
    if (!options.storeIf(status, error)) return release(NOT_STORED, `status ${status} is not stored (storeIf)`, false);
    const headers = response.replayableHeaders(options.replayHeaders);
    const encoded = encodeError(error, headers, options.maxResponseBytes);
    return encoded.storable ? { action: 'store', response: encoded.response } : withoutBody(status, headers, encoded);
  }
  if (!outcome.fromHandler) {
    return release('not_handler_result', 'the value was not produced by the handler (it failed and a fallback answered)', false);
  }
  const status = response.status() ?? 200;
  if (!options.storeIf(status)) return release(NOT_STORED, `status ${status} is not stored (storeIf)`, transactional);
  const headers = response.replayableHeaders(options.replayHeaders);
  const encoded = encodeValue(outcome.value, outcome.emissions, status, headers, options.maxResponseBytes);
  return encoded.storable ? { action: 'store', response: encoded.response } : withoutBody(status, headers, encoded);
}

/** The outcome stored without its body (too large, or not replayable): the key completes all the same. */
function withoutBody(status: number, headers: Record<string, string>, notKept: NotStorable): Decision {
  const response = responseWithoutBody({ status, headers, body: null, bodyEncoding: 'empty' }, notKept.bytes ?? 0, notKept.reason);
  return { action: 'store', response, notKept };
}

function release(reason: string, detail: string, warn: boolean): Decision {
  return { action: 'release', reason, detail, warn };
}
