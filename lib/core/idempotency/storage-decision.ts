import { errorTypeOf } from '../events.js';
import type { HandlerOutcome, IdempotentResponse } from './idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from './idempotency-options.interface.js';
import type { StoredResponse } from './idempotency-store.interface.js';
import { encodeError, encodeValue, isHttpErrorLike } from './response-encoding.js';

/**
 * What to do with the key once the outcome is known.
 * @internal
 */
export type Decision =
  | { readonly action: 'store'; readonly response: StoredResponse }
  | { readonly action: 'release'; readonly reason: string; readonly detail: string; readonly warn: boolean };

/**
 * The storage policy: whether a handler's outcome is stored (and what), or the key released (and
 * why). Stored: values and HTTP errors whose status `storeIf` accepts and that can be replayed
 * within `maxStoredBodyBytes`. Released: crashes, errors in transactional mode (rolled back),
 * values a fallback produced, unreplayable or oversized bodies (these last with a warning).
 * @internal
 */
export function decideStorage(options: ResolvedIdempotencyOptions, response: IdempotentResponse, outcome: HandlerOutcome, transactional: boolean): Decision {
  if (outcome.kind === 'error') {
    const { error } = outcome;
    if (transactional) return release('error', `the handler failed with ${errorTypeOf(error)}; its writes were rolled back`, false);
    if (!isHttpErrorLike(error)) return release('crash', `the handler failed with ${errorTypeOf(error)}`, false);
    const status = error.getStatus();
    if (!options.storeIf(status, error)) return release('not_stored', `status ${status} is not stored (storeIf)`, false);
    const encoded = encodeError(error, response.replayableHeaders(options.replayHeaders), options.maxStoredBodyBytes);
    return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
  }
  if (!outcome.fromHandler) {
    return release('not_handler_result', 'the value was not produced by the handler (it failed and a fallback answered)', false);
  }
  const status = response.status() ?? 200;
  if (!options.storeIf(status)) return release('not_stored', `status ${status} is not stored (storeIf)`, transactional);
  const headers = response.replayableHeaders(options.replayHeaders);
  const encoded = encodeValue(outcome.value, outcome.emissions, status, headers, options.maxStoredBodyBytes);
  return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
}

function release(reason: string, detail: string, warn: boolean): Decision {
  return { action: 'release', reason, detail, warn };
}
