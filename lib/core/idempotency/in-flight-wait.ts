import type { Clock } from '../clock.js';
import { IdempotencyErrorCode } from './idempotency-core.errors.js';
import type { IdempotencyAnswer } from './idempotency-core.interface.js';

/** First wait of a call that found its key in flight; doubled up to the cap. */
const FIRST_IN_FLIGHT_POLL_MS = 10;
const MAX_IN_FLIGHT_POLL_MS = 250;

/** Whether the core refused a call because the first call with its key still runs. @internal */
export function isInFlight(answer: IdempotencyAnswer): boolean {
  return answer.kind === 'rejected' && answer.error.code === IdempotencyErrorCode.RequestInProgress;
}

/**
 * A call whose key is in flight waits for the first one, asking the store again (`execute`) with
 * growing pauses on `clock`, for at most `lease` ms: then it has the stored outcome, or has run
 * the work itself if the first one failed and released the key. Never two runs at once.
 * Returns `first` at once when it is not in flight.
 * @internal
 */
export async function waitWhileInFlight(first: IdempotencyAnswer, execute: () => Promise<IdempotencyAnswer>, clock: Clock, lease: number): Promise<IdempotencyAnswer> {
  if (!isInFlight(first)) return first;
  const giveUpAt = clock.now() + lease;
  let answer = first;
  let pause = FIRST_IN_FLIGHT_POLL_MS;
  while (isInFlight(answer) && clock.now() < giveUpAt) {
    const wait = Math.min(pause, Math.max(1, giveUpAt - clock.now()));
    await new Promise<void>((resolve) => clock.setTimeout(resolve, wait));
    pause = Math.min(pause * 2, MAX_IN_FLIGHT_POLL_MS);
    answer = await execute();
  }
  return answer;
}
