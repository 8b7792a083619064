import { followContext, type Cancellation } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import type { TimerHandle } from './clock.js';
import { BulkheadRejectedError } from './errors.js';
import type { BulkheadOptions, ResolvedBulkheadOptions } from './options.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import { promiseOf, workOf, type Settle, type Step, type Work } from './step.js';
import { resolveBulkheadOptions } from './validate.js';

/** `retryAfterMs` hint of a rejection: slots usually free up within a second on a request path. */
const REJECTION_RETRY_AFTER_MS = 1000;

/**
 * A point-in-time view of a bulkhead (the resilience console's gauges).
 * @publicApi
 */
export interface BulkheadSnapshot {
  /** The policy key. */
  readonly key: string;
  /** Executions running now. */
  readonly active: number;
  /** Callers waiting for a slot now. */
  readonly queued: number;
  /** Most executions running at once. */
  readonly maxConcurrent: number;
  /** Most callers waiting for a slot. */
  readonly maxQueue: number;
}

interface Waiter {
  /** Hands the freed slot to this waiter. */
  grant(): void;
}

/**
 * Caps concurrent executions of one policy key (shared by all its callers; get it from the
 * `PolicyRegistry`). Beyond `maxConcurrent`, up to `maxQueue` callers wait in FIFO order; the rest
 * are rejected with `BulkheadRejectedError(key, 1000, 'full')`. A waiter leaves the queue, and never
 * runs, when its signal aborts (rejecting with the abort) or when `queueTimeout` or its deadline
 * passes (`BulkheadRejectedError` with reason `queue_timeout`).
 * @publicApi
 */
export class BulkheadPolicy implements Policy, Step {
  /** The options with defaults filled in. */
  options: ResolvedBulkheadOptions;
  private running = 0;
  private readonly waiters = new Set<Waiter>();

  constructor(
    /** The policy key. */
    readonly key: string,
    options: BulkheadOptions,
    private readonly env: PolicyEnvironment,
  ) {
    this.options = resolveBulkheadOptions(options);
  }

  /**
   * Applies new options (an options reload) keeping the calls running and queued: a larger
   * `maxConcurrent` starts queued calls at once; a smaller one lets the running calls finish and
   * admits new ones once they fit; a smaller `maxQueue` only turns away new arrivals.
   */
  reconfigure(options: BulkheadOptions): void {
    this.options = resolveBulkheadOptions(options);
    while (this.running < this.options.maxConcurrent && this.waiters.size > 0) {
      this.running++;
      this.release();
    }
  }

  /** Executions running now. */
  get active(): number {
    return this.running;
  }

  /** Callers waiting for a slot now. */
  get queued(): number {
    return this.waiters.size;
  }

  /** Occupancy and limits now. */
  snapshot(): BulkheadSnapshot {
    const { maxConcurrent, maxQueue } = this.options;
    return { key: this.key, active: this.running, queued: this.waiters.size, maxConcurrent, maxQueue };
  }

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle));
  }

  /** Runs `next` in a slot: at once, after waiting in the queue, or not at all (rejected). The callback form of {@link execute}, which pipelines compose. */
  run(next: Work, context: PolicyContext, settle: Settle): void {
    const { token, done } = followContext(context, settle);
    if (token.aborted) {
      done(true, abortErrorOf(token));
      return;
    }
    const start = () => {
      // A slot handed over in the same tick as an abort must not start the work.
      if (token.aborted) {
        this.release();
        done(true, abortErrorOf(token));
        return;
      }
      next(context, (failed, outcome) => {
        this.release();
        done(failed, outcome);
      });
    };
    if (this.running < this.options.maxConcurrent) {
      this.running++;
      start();
    } else if (this.waiters.size < this.options.maxQueue) {
      this.waitForSlot(context, token, start, (error) => done(true, error));
    } else {
      done(true, this.reject(context, 'full'));
    }
  }

  private release(): void {
    const next = this.waiters.values().next();
    if (next.done) {
      this.running--;
      return;
    }
    this.waiters.delete(next.value);
    next.value.grant();
  }

  private reject(context: PolicyContext, reason: 'full' | 'queue_timeout'): BulkheadRejectedError {
    this.env.events({ event: 'bulkhead_rejected', policy: this.key, attempt: context.attempt, detail: reason });
    return new BulkheadRejectedError(this.key, REJECTION_RETRY_AFTER_MS, reason);
  }

  /** Calls `granted` when a slot is handed over (it then belongs to the caller, `running` unchanged), or `refused` with the reason. */
  private waitForSlot(context: PolicyContext, token: Cancellation, granted: () => void, refused: (error: unknown) => void): void {
    const { clock } = this.env;
    const limit = Math.min(this.options.queueTimeout ?? Infinity, context.deadline - clock.now());
    if (limit <= 0) {
      refused(this.reject(context, 'queue_timeout'));
      return;
    }
    let timer: TimerHandle | undefined;
    const leave = () => {
      this.waiters.delete(waiter);
      unsubscribe();
      if (timer !== undefined) clock.clearTimeout(timer);
    };
    const waiter: Waiter = {
      grant: () => {
        leave();
        // the releasing call settles first, as it would with promises
        queueMicrotask(granted);
      },
    };
    const unsubscribe = token.onAbort(() => {
      leave();
      refused(abortErrorOf(token));
    });
    if (Number.isFinite(limit)) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        leave();
        refused(this.reject(context, 'queue_timeout'));
      }, limit);
    }
    this.waiters.add(waiter);
  }
}
