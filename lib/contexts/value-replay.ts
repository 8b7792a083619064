import type { IdempotentResponse } from '../core/idempotency/idempotency-core.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import { ProblemDetailsException } from '../http/problem-details.js';
import { decodeStoredBody, isProblemBody, isStoredError, isStoredProblem } from '../idempotency/stored-response.js';

/**
 * The response view of a call whose caller gets a value, not an HTTP response (a message, a
 * gateway message): status 200, no headers to keep or set.
 * @internal
 */
export const NO_RESPONSE: IdempotentResponse = {
  status: () => 200,
  replayableHeaders: () => ({}),
  setHeader: () => undefined,
};

/**
 * Answers a stored outcome to a caller that gets a value: the stored value; a stored problem
 * thrown again through `render` (with its `Retry-After`); the handler's own stored error as
 * `storedError` rebuilds it; `notKept` (the first call succeeded, its answer was not kept)
 * thrown through `render` instead of inventing an answer.
 * @internal
 */
export function replayStoredValue(
  stored: StoredResponse,
  notKept: unknown,
  render: (error: unknown) => unknown,
  storedError: (body: unknown, status: number) => unknown,
): unknown {
  if (notKept !== undefined) throw render(notKept);
  const body = decodeStoredBody(stored);
  if (!isStoredError(stored)) return body;
  if (isStoredProblem(stored) && isProblemBody(body)) {
    const retryAfter = stored.headers['retry-after'];
    throw render(new ProblemDetailsException({ ...body, status: stored.status, ...(retryAfter === undefined ? {} : { headers: { 'retry-after': retryAfter } }) }));
  }
  throw storedError(body, stored.status);
}

/**
 * The problem a stored failure of the handler's own is answered with where the caller gets no
 * rebuilt error of its transport (a job, a provider method): `stored_error` with the stored status.
 * @internal
 */
export function storedFailureProblem(status: number, detail: string): ProblemDetailsException {
  return new ProblemDetailsException({ status, code: 'stored_error', title: 'Stored failure', detail });
}
