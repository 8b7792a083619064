import { AsyncLocalStorage } from 'node:async_hooks';
import type { Cancellation } from '../core/cancellation.js';
import type { Clock } from '../core/clock.js';
import type { DeadlineContext } from '../core/deadline-queue.js';
import type { IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';

/**
 * What the library stores for the work being run: set by the engine around every attempt of
 * a decorated route or provider method.
 * @internal
 */
export interface ResilienceContextStore {
  /**
   * Aborted when this attempt should stop (attempt timeout, deadline, client disconnect). The
   * library's stores define it as a getter of `cancellation.signal`, so the `AbortSignal` only
   * exists once user code asks for it: never spread a store.
   */
  readonly signal: AbortSignal;
  /** The attempt's cancellation token (the library's stores have one); `signal` follows it. */
  readonly cancellation?: Cancellation;
  /** Absolute deadline on `clock` (ms), `Infinity` when there is none. */
  readonly deadline: number;
  /** 1-based attempt number (0 outside any attempt, while the request waits between attempts). */
  readonly attempt: number;
  /** Policy key (named policy or `Class.method`). */
  readonly policy: string;
  /** Request id of the HTTP request being served, when known. */
  readonly requestId?: string;
  /** `METHOD /route` of the HTTP request being served, when known. */
  readonly route?: string;
  /** Where the request id, route or operation come from (the library's stores have one when known). */
  readonly request?: RequestInfoSource;
  /** Clock the deadline is measured on. */
  readonly clock: Clock;
  /** Cleanups run when this attempt settles (listeners added by `withDeadline()`, …). */
  readonly cleanups?: Set<() => void>;
}

/**
 * Where the request id and route of the HTTP request being served come from. Every route
 * (decorated or not) opens a scope with one, so work started by a request — even work that
 * outlives it, like a background job it queues — tags its events and outgoing calls with that
 * request's id. They are computed on first use, since most requests never need them (they are
 * read for events, logs and outgoing calls).
 * @internal
 */
export interface RequestInfoSource {
  /** The request id and route (may be computed on the first call and cached). */
  readonly info: () => RequestInfo;
  /** The request described, so a scope already open for it is not opened again. */
  readonly request?: unknown;
  /** The Nest context type outside HTTP (`rpc`, …), readable without computing `info()`; absent on HTTP. */
  readonly contextType?: string;
}

/**
 * Request id and route (or, outside HTTP, the operation) of the request being served.
 * @publicApi
 */
export interface RequestInfo {
  /** pino-http `req.id`, else the `X-Request-Id` header (an `x-request-id` header or metadata entry outside HTTP). */
  readonly requestId?: string;
  /** `METHOD /route/template` of an HTTP request; absent in other contexts. */
  readonly route?: string;
  /** The Nest context type of a request that is not HTTP (`rpc`, `graphql`, `ws`, `job`); absent on HTTP. */
  readonly contextType?: string;
  /** What is being served outside HTTP: the message pattern, the GraphQL operation, the WebSocket event, the queue. */
  readonly operation?: string;
  /**
   * OpenTelemetry semantic-convention attributes of the operation outside HTTP (`rpc.system`,
   * `rpc.method`, `messaging.system`, `messaging.destination.name`, `graphql.operation.name`, …).
   */
  readonly attributes?: Readonly<Record<string, string>>;
}


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

function runCallbackInFrame(frame: unknown, callback: (arg: unknown) => void, arg: unknown): void {
  if (frame === undefined) callback(arg);
  else frames.run(frame as ContextFrame, callback, arg);
}

/**
 * Hands the library's frame (request, attempt, idempotent execution) of the code that scheduled a
 * deadline to its callback, when one shared timer runs the callbacks of every call: a timeout's
 * events then carry the request id of its own call. Other async-context stores see the context of
 * the shared timer there.
 * @internal
 */
export const frameDeadlineContext: DeadlineContext = {
  capture: () => frames.getStore(),
  run: runCallbackInFrame,
};
