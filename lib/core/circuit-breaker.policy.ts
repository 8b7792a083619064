import { computeBackoffDelay } from './backoff.js';
import { cancellationOf } from './cancellation.js';
import { CircuitOpenError, isOperationAbortedError, isResilienceError } from './errors.js';
import type { BreakerOpenReason, CircuitBreakerOptions, ResolvedCircuitBreakerOptions } from './options.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import { UNAVAILABLE, unref, type SharedBreakerBackend, type SharedBreakerState, type SharedStateGuard } from './shared-policy-state.js';
import { promiseOf, workOf, type Settle, type Step, type Work } from './step.js';
import { resolveCircuitBreakerOptions } from './validate.js';
import { createWindow, type OutcomeWindow } from './breaker-windows.js';

/**
 * Breaker state. `isolated` is a manual open that never half-opens until {@link CircuitBreakerPolicy.reset}.
 * @publicApi
 */
export type CircuitBreakerState = 'closed' | 'open' | 'half_open' | 'isolated';

/**
 * A point-in-time view of a breaker, for health checks and metrics (resilience4j-shaped).
 * @publicApi
 */
export interface CircuitBreakerSnapshot {
  /** The policy key. */
  readonly key: string;
  /** `closed`, `open`, `half_open` or `isolated`. */
  readonly state: CircuitBreakerState;
  /** Failure share of the calls currently judged (0 when there are none). */
  readonly failureRate: number;
  /** Slow-call share of the calls currently judged (0 when slow calls are not judged). */
  readonly slowCallRate: number;
  /** Calls currently judged (in the window, or since the breaker last closed for `consecutive`). */
  readonly bufferedCalls: number;
  /** Calls refused since the breaker last closed. */
  readonly notPermittedCalls: number;
  /** When the breaker last opened (clock ms), while it is not closed. */
  readonly openedAt?: number;
  /** How long until a probe is let through, in ms, while open. */
  readonly retryAfterMs?: number;
}

/**
 * What a breaker has seen since it was created, never reset (the resilience console's sparklines
 * are the differences between two readings).
 * @publicApi
 */
export interface CircuitBreakerCounters {
  /** Calls that ran and were judged (caller aborts are not counted). */
  readonly calls: number;
  /** Of those, calls judged failures. */
  readonly failures: number;
  /** Calls refused without running (open, half-open with its probes taken, isolated). */
  readonly rejected: number;
}

interface Permit {
  readonly generation: number;
  readonly probe: boolean;
  /** The shared generation the call was admitted under (-1 when not shared or not known yet). */
  readonly shared: number;
}

/** A shared breaker's link to its backend, and what this instance last heard from it. */
interface SharedLink {
  readonly backend: SharedBreakerBackend;
  readonly guard: SharedStateGuard;
  /** Newest shared generation adopted (-1 before the first answer); older answers are stale. */
  generation: number;
  /** Consecutive opens of the shared breaker, for the next break duration. */
  opens: number;
  /** Outcomes waiting for the next flush. */
  queue: Array<{ generation: number; failure: boolean; slow: boolean; probe: boolean }>;
  flushTimer: unknown;
  /** Set by the first flush: from then on this instance took part, and an open it hears is a transition it saw. */
  reported: boolean;
}

/** Longest `retryAfterMs` told to callers refused while probes run: a probe's answer is expected soon. */
const HALF_OPEN_RETRY_AFTER_MS = 1000;

/**
 * A circuit breaker keyed by policy (shared by every caller of the key; get it from the
 * `PolicyRegistry`). Closed: calls run and outcomes are judged by the strategy. Open: calls fail
 * with `CircuitOpenError(key, retryAfterMs)` without running. After `breakDuration` the next call
 * half-opens it (no timer is kept): exactly `halfOpenProbes` concurrent probes run, other callers
 * fail fast with `retryAfterMs = min(1000, breakDuration)`; all probes succeeding closes it, a failed
 * (or slow) probe re-opens it, with a longer break when `breakDuration` is a backoff. Outcomes of
 * calls admitted before a transition are ignored. Caller aborts never count.
 *
 * With `shared: true` (and a {@link SharedStateGuard} from the registry) the outcomes also go, in
 * batches, to one window shared by every instance, which decides when to open and for how long;
 * this instance adopts the shared state from the answer of each batch and from pushes. Admission
 * still reads this instance's state only. Half-open probing stays per instance (each instance lets
 * `halfOpenProbes` probes through once the shared break ends; the first failed probe re-opens it
 * everywhere, `halfOpenProbes` successful ones close it everywhere). While the backend is
 * unreachable, the in-process window (which saw every outcome) decides.
 * @publicApi
 */
export class CircuitBreakerPolicy implements Policy, Step {
  private resolved: ResolvedCircuitBreakerOptions;
  private window: OutcomeWindow;
  private current: CircuitBreakerState = 'closed';
  private generation = 0;
  private consecutiveOpens = 0;
  private breakMs = 0;
  private openedAt: number | undefined;
  private openUntil = 0;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  private notPermitted = 0;
  private judgedCalls = 0;
  private judgedFailures = 0;
  private refusedCalls = 0;
  /** Whether the current open was decided by the in-process window during a shared-state outage. */
  private openedLocally = false;
  private readonly link: SharedLink | undefined;

  constructor(
    /** The policy key. */
    readonly key: string,
    options: CircuitBreakerOptions,
    private readonly env: PolicyEnvironment,
    /** The registry's shared state (from the `PolicyRegistry`), used when `options.shared` is set. */
    shared?: SharedStateGuard,
  ) {
    this.resolved = resolveCircuitBreakerOptions(options);
    this.window = createWindow(this.resolved);
    if (this.options.shared && shared !== undefined) {
      const backend = shared.backend.circuitBreaker(key, this.options, (state) => this.adopt(state, 'read'));
      this.link = { backend, guard: shared, generation: -1, opens: 0, queue: [], flushTimer: undefined, reported: false };
      // an instance that starts while the breaker is open elsewhere learns it before its first outcome
      void shared.call(key, () => backend.read()).then((state) => {
        if (state !== UNAVAILABLE) this.adopt(state, 'read');
      });
    }
  }

  /** The options with defaults filled in. */
  get options(): ResolvedCircuitBreakerOptions {
    return this.resolved;
  }

  /**
   * Applies new options (an options reload) keeping the state: an open breaker stays open until its
   * current break ends (a new `breakDuration` applies from the next open), a closed one keeps its
   * window. A different `strategy` or `slowCall` cannot judge the outcomes counted so far: the window
   * starts empty then (the answer says so). `shared` cannot change here (the registry replaces the
   * breaker, state included).
   * @returns `['window']` when the window was reset, else `[]`.
   */
  reconfigure(options: CircuitBreakerOptions): string[] {
    const next = resolveCircuitBreakerOptions(options);
    const sameJudging = sameSettings(next.strategy, this.resolved.strategy) && sameSettings(next.slowCall, this.resolved.slowCall);
    this.resolved = next;
    if (sameJudging) return [];
    this.window = createWindow(next);
    return ['window'];
  }

  /** Whether outcomes go to a shared window (`shared: true` with a backend configured). */
  get shared(): boolean {
    return this.link !== undefined;
  }

  /** The current state; an open breaker whose break has elapsed reports (and becomes) `half_open`. */
  get state(): CircuitBreakerState {
    this.refresh();
    return this.current;
  }

  /** A point-in-time view for health checks and metrics. */
  snapshot(): CircuitBreakerSnapshot {
    const state = this.state;
    const now = this.env.clock.now();
    const stats = this.window.stats(now);
    return {
      key: this.key,
      state,
      failureRate: stats.calls === 0 ? 0 : stats.failures / stats.calls,
      slowCallRate: stats.calls === 0 || !this.options.slowCall ? 0 : stats.slow / stats.calls,
      bufferedCalls: stats.calls,
      notPermittedCalls: this.notPermitted,
      ...(state === 'closed' ? {} : { openedAt: this.openedAt }),
      ...(state === 'open' ? { retryAfterMs: Math.max(0, this.openUntil - now) } : {}),
    };
  }

  /** Calls, failures and refusals since the breaker was created. */
  counters(): CircuitBreakerCounters {
    return { calls: this.judgedCalls, failures: this.judgedFailures, rejected: this.refusedCalls };
  }

  /**
   * The state every instance shares, as the backend holds it now (one round trip, bounded by the
   * backend's `maxWait`): `undefined` for a breaker that is not shared, or while the backend does not
   * answer (this instance then decides alone).
   */
  async readShared(): Promise<SharedBreakerState | undefined> {
    const link = this.link;
    if (link === undefined) return undefined;
    const state = await link.guard.call(this.key, () => link.backend.read());
    if (state === UNAVAILABLE) return undefined;
    this.adopt(state, 'read');
    return state;
  }

  /** Opens the breaker by hand until {@link reset} (for incident response or maintenance). */
  isolate(): void {
    if (this.current === 'isolated') return;
    const from = this.current;
    this.current = 'isolated';
    this.generation++;
    this.openedAt = this.env.clock.now();
    if (this.breakMs === 0) this.breakMs = this.nextBreakMs(1);
    this.env.events({ event: 'breaker_opened', policy: this.key, from, detail: 'isolated' });
  }

  /**
   * Closes the breaker and forgets every recorded outcome; a shared breaker is closed for every
   * instance too (they learn it from the push or their next batch).
   */
  reset(): void {
    const from = this.current;
    this.close();
    if (from !== 'closed') this.env.events({ event: 'breaker_closed', policy: this.key, from });
    const link = this.link;
    if (link !== undefined) {
      void link.guard.call(this.key, () => link.backend.reset()).then((state) => {
        if (state !== UNAVAILABLE) this.adopt(state, 'read');
      });
    }
  }

  /**
   * Stops listening to the shared state and drops unsent outcomes (the registry evicted the key).
   * @internal
   */
  release(): void {
    if (this.link === undefined) return;
    if (this.link.flushTimer !== undefined) this.env.clock.clearTimeout(this.link.flushTimer);
    this.link.flushTimer = undefined;
    this.link.queue = [];
    this.link.backend.release();
  }

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle));
  }

  /** Runs `next` if the breaker permits it and records its outcome. The callback form of {@link execute}, which pipelines compose. */
  run(next: Work, context: PolicyContext, settle: Settle): void {
    let permit: Permit;
    try {
      permit = this.acquire(context);
    } catch (error) {
      settle(true, error);
      return;
    }
    const started = this.env.clock.now();
    next(context, (failed, outcome) => {
      this.settle(permit, failed ? this.judge(outcome, context) : 'success', started);
      settle(failed, outcome);
    });
  }

  /** A caller's abort says nothing about the dependency; a deadline or attempt timeout does. */
  private judge(error: unknown, context: PolicyContext): 'success' | 'failure' | 'ignored' {
    // the token when the library built the context: reading `signal` would create it
    const cancelled = cancellationOf(context) ?? context.signal;
    if (cancelled.aborted && !isResilienceError(cancelled.reason)) return 'ignored';
    if (this.options.isFailure(error)) return 'failure';
    return classifyNonFailure(error);
  }

  private acquire(context: PolicyContext): Permit {
    this.refresh();
    const now = this.env.clock.now();
    switch (this.current) {
      case 'closed':
        return { generation: this.generation, probe: false, shared: this.link?.generation ?? -1 };
      case 'half_open':
        if (this.probesInFlight + this.probeSuccesses < this.options.halfOpenProbes) {
          this.probesInFlight++;
          return { generation: this.generation, probe: true, shared: this.link?.generation ?? -1 };
        }
        throw this.reject(context, Math.max(1, Math.min(HALF_OPEN_RETRY_AFTER_MS, this.breakMs)));
      case 'open':
        throw this.reject(context, Math.max(1, this.openUntil - now));
      case 'isolated':
        throw this.reject(context, Math.max(1, this.breakMs));
    }
  }

  private reject(context: PolicyContext, retryAfterMs: number): CircuitOpenError {
    this.notPermitted++;
    this.refusedCalls++;
    this.env.events({ event: 'breaker_rejected', policy: this.key, attempt: context.attempt, detail: this.current });
    return new CircuitOpenError(this.key, retryAfterMs);
  }

  private settle(permit: Permit, outcome: 'success' | 'failure' | 'ignored', started: number): void {
    if (outcome !== 'ignored') {
      this.judgedCalls++;
      if (outcome === 'failure') this.judgedFailures++;
    }
    if (permit.generation !== this.generation) return;
    const now = this.env.clock.now();
    const slow = this.options.slowCall !== undefined && outcome !== 'ignored' && now - started >= this.options.slowCall.duration;
    if (permit.probe) {
      this.probesInFlight--;
      if (outcome === 'ignored') return;
      this.share(permit, outcome === 'failure', slow, true);
      if (outcome === 'failure' || slow) return this.open('probe_failed');
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.options.halfOpenProbes) {
        this.close();
        this.env.events({ event: 'breaker_closed', policy: this.key, from: 'half_open' });
      }
      return;
    }
    if (this.current !== 'closed' || outcome === 'ignored') return;
    this.window.record(outcome === 'failure', slow, now);
    if (this.link !== undefined) {
      this.share(permit, outcome === 'failure', slow, false);
      // the shared window decides; the in-process one (kept warm) only while the backend is down
      if (this.link.guard.available) return;
    }
    const reason = this.window.verdict(now, this.options.slowCall);
    if (reason) this.open(reason);
  }

  private open(reason: BreakerOpenReason): void {
    const from = this.current;
    const now = this.env.clock.now();
    this.consecutiveOpens++;
    this.breakMs = this.nextBreakMs(this.consecutiveOpens);
    this.current = 'open';
    this.generation++;
    this.openedAt = now;
    this.openUntil = now + this.breakMs;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    this.openedLocally = this.link !== undefined && !this.link.guard.available;
    this.env.events({ event: 'breaker_opened', policy: this.key, from, detail: reason, delayMs: this.breakMs });
  }

  /** Queues one outcome for the shared window: probes go at once, other outcomes with the next batch. */
  private share(permit: Permit, failure: boolean, slow: boolean, probe: boolean): void {
    const link = this.link;
    if (link === undefined || !link.guard.available) return;
    link.queue.push({ generation: permit.shared, failure, slow, probe });
    if (probe) {
      this.flush();
    } else if (link.flushTimer === undefined) {
      link.flushTimer = this.env.clock.setTimeout(() => this.flush(), link.guard.flushInterval);
      unref(link.flushTimer);
    }
  }

  /** Sends the queued outcomes (fire and forget: no call waits for it) and adopts the answer. */
  private flush(): void {
    const link = this.link!;
    if (link.flushTimer !== undefined) this.env.clock.clearTimeout(link.flushTimer);
    link.flushTimer = undefined;
    const batch = link.queue;
    if (batch.length === 0) return;
    link.queue = [];
    link.reported = true;
    const nextBreakMs = this.nextBreakMs(link.opens + 1);
    void link.guard.call(this.key, () => link.backend.record(batch, nextBreakMs)).then((state) => {
      if (state !== UNAVAILABLE) this.adopt(state, 'batch');
    });
  }

  /**
   * Follows the shared state: an open elsewhere opens this instance for the remaining break, a close
   * elsewhere closes it. Answers older than the newest adopted generation are stale and ignored; an
   * open this instance decided alone during an outage lasts its own break. The first state an
   * instance hears other than in answer to its own outcomes (its start-up read, or a push that beats
   * it), before it sent any outcome of its own, was decided before it started: an open one is
   * `breaker_state_loaded`, not `breaker_opened`, so alerts on transitions do not fire on every
   * deploy during (or just after) a shared break.
   */
  private adopt(state: SharedBreakerState, source: 'read' | 'batch'): void {
    const link = this.link;
    if (link === undefined || state.generation < link.generation) return;
    // its own outcomes already went out: whatever order the answers arrive in (a push or the start-up
    // read can beat the batch's answer on a busy loop), this instance saw the open happen
    const loaded = link.generation === -1 && source === 'read' && !link.reported;
    const changed = state.generation > link.generation;
    link.generation = state.generation;
    link.opens = state.opens;
    if (this.current === 'isolated') return;
    const now = this.env.clock.now();
    if (state.state === 'open') {
      const until = now + state.remainingMs;
      if (this.current === 'open') {
        // already open here (a failed probe, or an earlier push): the shared break is the one that counts
        if (changed || !this.openedLocally) this.openUntil = until;
        this.openedLocally = false;
        return;
      }
      // half-open on the same generation means this instance is probing the break it adopted
      if (this.current === 'half_open' && !changed) return;
      const from = this.current;
      this.current = 'open';
      this.generation++;
      this.consecutiveOpens = state.opens;
      this.breakMs = Math.max(1, state.remainingMs);
      this.openedAt = now;
      this.openUntil = until;
      this.probesInFlight = 0;
      this.probeSuccesses = 0;
      this.openedLocally = false;
      this.env.events({ event: loaded ? 'breaker_state_loaded' : 'breaker_opened', policy: this.key, from, detail: state.reason ?? 'failure_rate', delayMs: state.remainingMs });
      return;
    }
    if (this.current === 'closed' || this.openedLocally || !changed) return;
    const from = this.current;
    this.close();
    this.env.events({ event: 'breaker_closed', policy: this.key, from });
  }

  private close(): void {
    this.current = 'closed';
    this.generation++;
    this.consecutiveOpens = 0;
    this.breakMs = 0;
    this.openedAt = undefined;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    this.notPermitted = 0;
    this.openedLocally = false;
    this.window.reset();
  }

  /** Moves an open breaker whose break has elapsed to half-open. */
  private refresh(): void {
    if (this.current !== 'open' || this.env.clock.now() < this.openUntil) return;
    this.current = 'half_open';
    this.generation++;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    this.env.events({ event: 'breaker_half_opened', policy: this.key, from: 'open' });
  }

  private nextBreakMs(consecutiveOpens: number): number {
    const { breakDuration, maxBreakDuration } = this.options;
    if (typeof breakDuration === 'number') return breakDuration;
    const delay = computeBackoffDelay(
      breakDuration,
      { attempt: consecutiveOpens, error: undefined, previousDelay: this.breakMs, random: this.env.random },
      maxBreakDuration,
    );
    return Math.max(1, delay);
  }
}

/** A non-failure error: a caller's `AbortError` is ignored, anything else (a 4xx) means the dependency answered. */
function classifyNonFailure(error: unknown): 'success' | 'ignored' {
  if (isOperationAbortedError(error)) return 'ignored';
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError' ? 'ignored' : 'success';
}

/** Whether two option objects hold the same settings (functions compared by identity). */
function sameSettings(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if (!sameSettings((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false;
  }
  return true;
}
