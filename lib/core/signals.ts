import type { Clock } from './clock.js';

/**
 * A child `AbortController` that follows a parent signal, with an explicit `dispose()` that removes
 * the listener it put on the parent. Long-lived parents (a request, a service) must never
 * accumulate listeners, which is why `AbortSignal.any()` is not used (it leaks on Node 20).
 * @internal
 */
export interface LinkedAbort {
  readonly controller: AbortController;
  readonly signal: AbortSignal;
  /** Aborts the child with `reason` (no-op if already aborted). */
  abort(reason: unknown): void;
  /** Removes the parent listener. Safe to call more than once. */
  dispose(): void;
}

/** @internal creates a child controller aborted when `parent` aborts, with the parent's reason. */
export function linkAbort(parent?: AbortSignal): LinkedAbort {
  const controller = new AbortController();
  let onParentAbort: (() => void) | undefined;
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else {
      onParentAbort = () => controller.abort(parent.reason);
      parent.addEventListener('abort', onParentAbort, { once: true });
    }
  }
  return {
    controller,
    signal: controller.signal,
    abort: (reason) => {
      if (!controller.signal.aborted) controller.abort(reason);
    },
    dispose: () => {
      if (onParentAbort && parent) parent.removeEventListener('abort', onParentAbort);
      onParentAbort = undefined;
    },
  };
}

/**
 * Waits `ms` on `clock`. Rejects with `signal.reason` as soon as `signal` aborts, clearing the
 * timer and removing its listener, so an abort during a backoff settles within one tick.
 * @internal
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0 && !signal) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Settles with `promise`, or rejects with `signal.reason` the moment `signal` aborts, whichever
 * comes first. The work behind `promise` keeps running; cooperative code stops because it sees
 * the same signal. The listener is removed when either side settles.
 * @internal
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Throws the signal's reason when it is aborted. Put it between CPU-bound steps: synchronous code
 * cannot be interrupted, only checked.
 * @example
 * for (const row of rows) { throwIfAborted(currentSignal()); transform(row); }
 * @publicApi
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}
