import { Cancellation, cancellationOf } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import type { TimerHandle } from './clock.js';
import { BulkheadRejectedError } from './errors.js';
import type { BulkheadOptions, ResolvedBulkheadOptions } from './options.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import { invoke } from './timeout.policy.js';
import { resolveBulkheadOptions } from './validate.js';

/** `retryAfterMs` hint of a rejection: slots usually free up within a second on a request path. */
const REJECTION_RETRY_AFTER_MS = 1000;

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
export class BulkheadPolicy implements Policy {
  /** The options with defaults filled in. */
  readonly options: ResolvedBulkheadOptions;
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

  /** Executions running now. */
  get active(): number {
    return this.running;
  }

  /** Callers waiting for a slot now. */
  get queued(): number {
    return this.waiters.size;
  }

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    const attached = cancellationOf(context);
    if (attached !== undefined) return this.run(fn, context, attached);
    // a context made by hand: follow its signal, and stop listening to it once done
    const token = Cancellation.from(context.signal);
    return this.run(fn, context, token).finally(() => token.dispose());
  }

  private async run<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext, token: Cancellation): Promise<T> {
    if (token.aborted) throw abortErrorOf(token);
    if (this.running < this.options.maxConcurrent) this.running++;
    else if (this.waiters.size < this.options.maxQueue) await this.waitForSlot(context, token);
    else throw this.reject(context, 'full');
    try {
      // A slot handed over in the same tick as an abort must not start the work.
      if (token.aborted) throw abortErrorOf(token);
      return await invoke(fn, context);
    } finally {
      this.release();
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

  /** Resolves when a slot is handed over; the slot then belongs to the caller (`running` unchanged). */
  private waitForSlot(context: PolicyContext, token: Cancellation): Promise<void> {
    const { clock } = this.env;
    const limit = Math.min(this.options.queueTimeout ?? Infinity, context.deadline - clock.now());
    if (limit <= 0) return Promise.reject(this.reject(context, 'queue_timeout'));
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const leave = () => {
        this.waiters.delete(waiter);
        unsubscribe();
        if (timer !== undefined) clock.clearTimeout(timer);
      };
      const waiter: Waiter = {
        grant: () => {
          leave();
          resolve();
        },
      };
      const unsubscribe = token.onAbort(() => {
        leave();
        reject(abortErrorOf(token));
      });
      if (Number.isFinite(limit)) {
        timer = clock.setTimeout(() => {
          timer = undefined;
          leave();
          reject(this.reject(context, 'queue_timeout'));
        }, limit);
      }
      this.waiters.add(waiter);
    });
  }
}
