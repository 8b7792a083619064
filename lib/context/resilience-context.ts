import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { Cancellation } from '../core/cancellation.js';
import { currentInFrame, runInFrame, type RequestInfo, type RequestInfoSource, type ResilienceContextStore } from './context-frame.js';

// Declared with the frame that carries it; the public API of the context is this file.
export type { RequestInfo } from './context-frame.js';

/**
 * The fields every store of one call shares (see {@link createContextStore}).
 * @internal
 */
export interface SharedStoreFields {
  /** Policy key (named policy or `Class.method`). */
  readonly policy: string;
  /** Clock the deadlines are measured on. */
  readonly clock: Clock;
  /** Request id and route of the request being served, computed on first use. */
  readonly request?: RequestInfoSource;
}

/**
 * A context store whose `signal` is a getter of `cancellation.signal` (created only when read;
 * the getter sits on the prototype, which keeps creating a store as cheap as a plain object).
 * `cleanups` marks an attempt's store (attempt settle hooks run on it).
 */
class TokenContextStore implements ResilienceContextStore {
  private cleanupSet: Set<() => void> | undefined;

  /**
   * Whether the first attempt of the call may still take this (call) store over: true only while
   * the call's first synchronous pass runs (see {@link claimCallStore}).
   */
  claimable = false;

  constructor(
    private readonly shared: SharedStoreFields,
    public cancellation: Cancellation,
    public deadline: number,
    public attempt: number,
    private isAttempt: boolean,
  ) {}

  /** Makes this call's store the store of its first attempt (see {@link claimCallStore}). */
  claim(cancellation: Cancellation, deadline: number, attempt: number): void {
    this.claimable = false;
    this.cancellation = cancellation;
    this.deadline = deadline;
    this.attempt = attempt;
    this.isAttempt = true;
  }

  /** An attempt's cleanups, created on first use (most attempts register none). */
  get cleanups(): Set<() => void> | undefined {
    return this.isAttempt ? (this.cleanupSet ??= new Set()) : undefined;
  }

  /** The cleanups registered so far, without creating the set. */
  get registeredCleanups(): Set<() => void> | undefined {
    return this.cleanupSet;
  }

  get signal(): AbortSignal {
    return this.cancellation.signal;
  }

  get policy(): string {
    return this.shared.policy;
  }

  get requestId(): string | undefined {
    return this.shared.request?.info().requestId;
  }

  get route(): string | undefined {
    return this.shared.request?.info().route;
  }

  get request(): RequestInfoSource | undefined {
    return this.shared.request;
  }

  get clock(): Clock {
    return this.shared.clock;
  }
}

/**
 * A context store for `cancellation` whose `signal` is created only when user code reads it.
 * `isAttempt` marks an attempt's store: it collects cleanups ({@link onAttemptSettled}).
 * @internal
 */
export function createContextStore(
  shared: SharedStoreFields,
  cancellation: Cancellation,
  deadline: number,
  attempt: number,
  isAttempt = false,
): ResilienceContextStore {
  return new TokenContextStore(shared, cancellation, deadline, attempt, isAttempt);
}

/**
 * The store of a whole call (attempt 0, the call's token, no deadline) that its first attempt may
 * take over while the call's first synchronous pass runs ({@link claimCallStore}, until
 * {@link closeCallStore}): a call whose first attempt starts in that pass then enters one
 * async-context frame, not one for the call and one for the attempt.
 * @internal
 */
export function createCallStore(shared: SharedStoreFields, cancellation: Cancellation): ResilienceContextStore {
  const store = new TokenContextStore(shared, cancellation, Infinity, 0, false);
  store.claimable = true;
  return store;
}

/**
 * Makes `store` (from {@link createCallStore}, in whose frame the caller runs) the store of the
 * attempt described by `cancellation`, `deadline` and `attempt`, if it is still claimable; returns
 * whether it did. From then on the call's frame describes that attempt, also to code of the call
 * that runs outside it (its deadline callbacks, the wait before a retry), as it does to the
 * attempt's own leftover work once the attempt settled.
 * @internal
 */
export function claimCallStore(store: ResilienceContextStore, cancellation: Cancellation, deadline: number, attempt: number): boolean {
  if (!(store instanceof TokenContextStore) || !store.claimable) return false;
  store.claim(cancellation, deadline, attempt);
  return true;
}

/** Ends the pass in which the first attempt may claim `store` ({@link createCallStore}). @internal */
export function closeCallStore(store: ResilienceContextStore): void {
  if (store instanceof TokenContextStore) store.claimable = false;
}

/**
 * What {@link Resilience | `Resilience.current()`} returns: the signal, deadline and attempt of the work running now.
 * @publicApi
 */
export interface ResilienceCurrent {
  /** Aborted when the current attempt should stop; pass it to `fetch`, DB drivers, timers. */
  readonly signal: AbortSignal;
  /** Absolute deadline (ms on the module clock), `Infinity` when there is none. */
  readonly deadline: number;
  /** 1-based attempt number of the current attempt. */
  readonly attempt: number;
  /** Policy key (named policy or `Class.method`). */
  readonly policy: string;
  /** Request id of the HTTP request being served, when known. */
  readonly requestId?: string;
  /** `METHOD /route` of the HTTP request being served, when known. */
  readonly route?: string;
  /** Milliseconds left until `deadline` (never negative; `Infinity` when there is no deadline). */
  remaining(): number;
}

/**
 * Runs `fn` with `source` as the request being served.
 * @internal
 */
export function runWithRequestInfo<T>(source: RequestInfoSource, fn: () => T): T {
  // The idempotency layer and the attempt both open it on idempotent routes: the outer one is enough.
  if (source.request !== undefined && currentInFrame('request')?.request === source.request) return fn();
  return runInFrame('request', source, fn);
}

/**
 * Runs `fn(arg)` with `context` as the current resilience context (visible to `currentSignal()`,
 * `Resilience.current()`, `@AttemptSignal()` and `withDeadline()`).
 * @internal
 */
export function runWithResilienceContext<T, A = undefined>(context: ResilienceContextStore, fn: (arg: A) => T, arg?: A): T {
  return runInFrame('resilience', context, fn, arg);
}

/** @internal the raw store of the current context. */
export function currentResilienceStore(): ResilienceContextStore | undefined {
  return currentInFrame('resilience');
}

/**
 * The `AbortSignal` of the attempt running now, or `undefined` outside a decorated route or method.
 * Pass it to everything that can be cancelled.
 * @example
 * const rows = await db.query(sql, { signal: currentSignal() });
 * @publicApi
 */
export function currentSignal(): AbortSignal | undefined {
  return currentInFrame('resilience')?.signal;
}

/**
 * Registers `cleanup` to run when the current attempt settles. Returns false (and does nothing)
 * outside an attempt.
 * @internal
 */
export function onAttemptSettled(cleanup: () => void): boolean {
  const cleanups = currentInFrame('resilience')?.cleanups;
  if (!cleanups) return false;
  cleanups.add(cleanup);
  return true;
}

/**
 * Runs and forgets every cleanup of `store`. Never throws.
 * @internal
 */
export function runAttemptCleanups(store: ResilienceContextStore): void {
  const cleanups = store instanceof TokenContextStore ? store.registeredCleanups : store.cleanups;
  if (!cleanups) return;
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // a cleanup must not turn a finished attempt into a failure
    }
  }
  cleanups.clear();
}

/**
 * Request id and route of the request being served (from the current resilience context, else
 * from the request that started the code running now), for logs, events and outgoing calls.
 * @publicApi
 */
export function getRequestInfo(): RequestInfo | undefined {
  const store = currentInFrame('resilience');
  const source = store?.request;
  if (source !== undefined) return source.info();
  if (store && (store.requestId !== undefined || store.route !== undefined)) {
    return { requestId: store.requestId, route: store.route };
  }
  return currentInFrame('request')?.info();
}

/**
 * Read access to the resilience context of the code running now.
 * @publicApi
 */
export const Resilience = {
  /**
   * The signal, deadline and attempt of the work running now, or `undefined` outside a decorated
   * route or method.
   * @example
   * const ctx = Resilience.current();
   * if (ctx && ctx.remaining() < 500) return cachedAnswer;
   */
  current(): ResilienceCurrent | undefined {
    const store = currentInFrame('resilience');
    if (!store) return undefined;
    const clock = store.clock ?? systemClock;
    return {
      // a getter: the signal is only created if the caller reads it
      get signal() {
        return store.signal;
      },
      deadline: store.deadline,
      attempt: store.attempt,
      policy: store.policy,
      requestId: store.requestId,
      route: store.route,
      remaining: () => (Number.isFinite(store.deadline) ? Math.max(0, store.deadline - clock.now()) : Infinity),
    };
  },
};
