import type { PolicyContext } from './policy.js';

/**
 * Settles a step once: `failed` tells whether `outcome` is an error or the value. Part of the
 * published typings (the policies implement {@link Step}); not exported from the package root.
 */
export type Settle = (failed: boolean, outcome: unknown) => void;

/** Work in callback form: what a policy runs under its behaviour. */
export type Work = (context: PolicyContext, settle: Settle) => void;

/**
 * A policy in callback form. Every policy runs its calls this way, and its public promise
 * `execute()` is this plus one promise: chained in a pipeline, a call costs the promises of the
 * user's own work and one for the whole call, not one or more per stage (on Node 20 each promise
 * also pays every enabled AsyncLocalStorage).
 */
export interface Step<H = unknown> {
  run(next: Work, context: PolicyContext, settle: Settle, hooks?: H): void;
}

/** Settles with a handler result: a value now, a promise or thenable when it settles. @internal */
export function settleWith(result: unknown, settle: Settle): void {
  if (result instanceof Promise) {
    result.then(
      (value) => settle(false, value),
      (error: unknown) => settle(true, error),
    );
  } else if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof (result as PromiseLike<unknown>).then === 'function') {
    // a thenable (a lazy query builder) is awaited once, as `await` would
    Promise.resolve(result).then(
      (value) => settle(false, value),
      (error: unknown) => settle(true, error),
    );
  } else {
    settle(false, result);
  }
}

/** `fn` (promise-returning or plain) as {@link Work}; a synchronous throw fails it. @internal */
export function workOf(fn: (context: PolicyContext) => unknown): Work {
  return (context, settle) => {
    let result: unknown;
    try {
      result = fn(context);
    } catch (error) {
      settle(true, error);
      return;
    }
    settleWith(result, settle);
  };
}

/** Runs a callback-form operation as a promise. @internal */
export function promiseOf<T>(run: (settle: Settle) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((failed, outcome) => (failed ? reject(outcome) : resolve(outcome as T)));
  });
}

/**
 * `fn`, callable once; later calls are ignored (a step settled by a timeout, then by its work).
 * The one settle-once guard of the library: every callback that two racers may call goes through it.
 * @internal
 */
export function once<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let open = true;
  return (...args) => {
    if (!open) return;
    open = false;
    fn(...args);
  };
}
