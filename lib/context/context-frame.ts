import { AsyncLocalStorage } from 'node:async_hooks';
import type { IdempotencyExecution } from '../idempotency/transaction-context.js';
import type { RequestInfoSource, ResilienceContextStore } from './resilience-context.js';

/**
 * Everything the library carries across async calls, in one frame per scope. Each field is
 * inherited from the enclosing frame unless the scope sets it.
 * @internal
 */
class ContextFrame {
  constructor(
    /** The HTTP request being served (its id and route, computed on first use). */
    readonly request: RequestInfoSource | undefined,
    /** The attempt (or call) of a decorated route or method running now. */
    readonly resilience: ResilienceContextStore | undefined,
    /** The idempotent execution of the request being served. */
    readonly idempotency: IdempotencyExecution | undefined,
    /** Arguments of the call being run, for fallback factories and providers. */
    readonly callArguments: readonly unknown[] | undefined,
  ) {}
}

/** The fields a scope can set. @internal */
export type ContextField = keyof ContextFrame;

// One AsyncLocalStorage for the whole library, not one per field: on Node 20 every enabled
// AsyncLocalStorage writes its store onto every async resource the process creates (each promise
// included) for the rest of the process's life, ~50 ns per storage per promise, on every route.
const frames = new AsyncLocalStorage<ContextFrame>();

/** @internal the value of `field` in the scope running now. */
export function currentInFrame<K extends ContextField>(field: K): ContextFrame[K] | undefined {
  return frames.getStore()?.[field];
}

/**
 * Runs `fn(arg)` in a scope where `field` is `value` and every other field is inherited (`arg`
 * spares the caller a closure on hot paths).
 * @internal
 */
export function runInFrame<K extends ContextField, T, A = undefined>(field: K, value: ContextFrame[K], fn: (arg: A) => T, arg?: A): T {
  const outer = frames.getStore();
  const frame = new ContextFrame(
    field === 'request' ? (value as RequestInfoSource) : outer?.request,
    field === 'resilience' ? (value as ResilienceContextStore) : outer?.resilience,
    field === 'idempotency' ? (value as IdempotencyExecution) : outer?.idempotency,
    field === 'callArguments' ? (value as readonly unknown[]) : outer?.callArguments,
  );
  return frames.run(frame, fn, arg as A);
}

/**
 * Runs `fn` in one scope where both the request being served and its idempotent execution are set
 * (one frame where two nested ones would do the same).
 * @internal
 */
export function runInRequestFrame<T>(request: RequestInfoSource, idempotency: IdempotencyExecution | undefined, fn: () => T): T {
  const outer = frames.getStore();
  return frames.run(new ContextFrame(request, outer?.resilience, idempotency ?? outer?.idempotency, outer?.callArguments), fn);
}
