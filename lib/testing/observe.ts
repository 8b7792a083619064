/**
 * How a promise settled so far, read synchronously. Lets a fake-clock test assert that a call is
 * still pending, or settled within one tick, without awaiting it (and without leaving a rejection
 * unhandled).
 * @publicApi
 */
export interface ObservedPromise<T> {
  /** Whether the promise has settled. */
  readonly settled: boolean;
  /** The fulfilled value, once fulfilled. */
  readonly value?: T;
  /** The rejection reason, once rejected. */
  readonly error?: unknown;
}

/**
 * Starts recording how `promise` settles.
 * @example
 * const call = observe(policy.execute(work, context));
 * controller.abort();
 * await clock.flush();
 * expect(call.settled).toBe(true);
 * @publicApi
 */
export function observe<T>(promise: Promise<T>): ObservedPromise<T> {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}
