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
 * Throws the signal's reason when it is aborted. Put it between CPU-bound steps: synchronous code
 * cannot be interrupted, only checked.
 * @example
 * for (const row of rows) { throwIfAborted(currentSignal()); transform(row); }
 * @publicApi
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}
