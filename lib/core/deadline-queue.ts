import type { Clock, TimerHandle } from './clock.js';

/**
 * A deadline of {@link DeadlineQueue}: pass it to {@link DeadlineQueue.cancel}.
 * @publicApi
 */
export interface Deadline {
  /** When the callback runs, on the queue's clock. */
  readonly dueAt: number;
}

interface Entry extends Deadline {
  readonly callback: (arg: unknown) => void;
  readonly arg: unknown;
  /** What {@link DeadlineContext.capture} returned when it was scheduled. */
  readonly context: unknown;
  readonly lane: Set<Entry>;
  /** The duration its lane is kept under. */
  readonly ms: number;
}

/**
 * Carries the caller's async context to a deadline's callback: one shared timer runs every
 * callback, so without it a callback would run in the context of whichever call armed the timer.
 * @publicApi
 */
export interface DeadlineContext {
  /** The context of the code scheduling a deadline (called on every {@link DeadlineQueue.schedule}: keep it cheap). */
  capture(): unknown;
  /** Runs `callback(arg)` in a context `capture()` returned. */
  run(context: unknown, callback: (arg: unknown) => void, arg: unknown): void;
}

/**
 * Options of a {@link DeadlineQueue}.
 * @publicApi
 */
export interface DeadlineQueueOptions {
  /** Runs each callback in the async context it was scheduled from (default: the timer's own). */
  readonly context?: DeadlineContext;
  /**
   * Keeps the armed timer (unref'd) once every deadline was cancelled, until it fires, finds
   * nothing and stops: for deadlines that are mostly cancelled before the next one is scheduled
   * (a timeout around fast work), which would otherwise create and clear a timer each. Default
   * `false`: an idle queue clears its timer at once.
   */
  readonly keepTimerWhenIdle?: boolean;
}

/**
 * Empty lanes kept for reuse. A queue fed few durations keeps all of them (no Set is made per
 * deadline); one fed many distinct durations drops a lane once it is empty and this many are
 * kept, so the map never grows past the live deadlines plus this.
 */
const MAX_LANES = 64;

/**
 * Many timers on **one** real timer: for per-request deadlines with few distinct durations (a
 * route's lease renewal, say), where most are cancelled long before they are due. Scheduling and
 * cancelling are a `Set` insert and delete, no timer is created or cleared per request; deadlines of
 * one duration are kept in a lane in the order they were scheduled, which is the order they fall
 * due, so firing only looks at the head of each lane.
 *
 * Callbacks run in due order per lane, never before `dueAt` and never twice; a callback that throws
 * does not stop the others. The one timer is unref'd: pending deadlines never keep the process alive.
 * Memory: one entry per pending deadline, plus at most 64 empty lanes.
 * @example
 * const queue = new DeadlineQueue(systemClock);
 * const renewal = queue.schedule(() => renewLease(), 10_000);
 * // …the request finished first:
 * queue.cancel(renewal);
 * @publicApi
 */
export class DeadlineQueue {
  /** Pending deadlines by duration, each lane in scheduling (= due) order. */
  private readonly lanes = new Map<number, Set<Entry>>();
  private timer: TimerHandle | undefined;
  private armedFor = Infinity;
  private pending = 0;

  private readonly context: DeadlineContext | undefined;
  private readonly keepTimerWhenIdle: boolean;

  constructor(
    private readonly clock: Clock,
    options: DeadlineQueueOptions = {},
  ) {
    this.context = options.context;
    this.keepTimerWhenIdle = options.keepTimerWhenIdle === true;
  }

  /** Number of deadlines scheduled and neither due yet nor cancelled. */
  get size(): number {
    return this.pending;
  }

  /**
   * Runs `callback(arg)` once, `ms` milliseconds from now, unless cancelled first (`arg` spares
   * the caller a closure per deadline; `now`, when the caller just read the clock, a second read).
   */
  schedule<A = undefined>(callback: (arg: A) => void, ms: number, arg?: A, now: number = this.clock.now()): Deadline {
    let lane = this.lanes.get(ms);
    if (!lane) {
      lane = new Set();
      this.lanes.set(ms, lane);
    }
    const entry: Entry = {
      dueAt: now + ms,
      callback: callback as (arg: unknown) => void,
      arg,
      context: this.context?.capture(),
      lane,
      ms,
    };
    lane.add(entry);
    this.pending++;
    if (entry.dueAt < this.armedFor) this.arm(entry.dueAt);
    return entry;
  }

  /** Forgets `deadline`; a deadline that already ran or was cancelled is ignored. */
  cancel(deadline: Deadline): void {
    const { lane } = deadline as Entry;
    if (!lane.delete(deadline as Entry)) return;
    if (lane.size === 0 && this.lanes.size > MAX_LANES && this.lanes.get((deadline as Entry).ms) === lane) this.lanes.delete((deadline as Entry).ms);
    // while others are pending the armed timer stays (it fires, finds nothing due and re-arms), so
    // a busy queue never creates or clears a timer per deadline
    if (--this.pending === 0 && !this.keepTimerWhenIdle) this.disarm();
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(dueAt: number): void {
    this.disarm();
    this.armedFor = dueAt;
    this.timer = this.clock.setTimeout(this.fire, Math.max(0, dueAt - this.clock.now()));
    (this.timer as { unref?: () => void } | undefined)?.unref?.();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.clock.now();
    const due: Entry[] = [];
    let next = Infinity;
    for (const [ms, lane] of this.lanes) {
      for (const entry of lane) {
        if (entry.dueAt > now) {
          next = Math.min(next, entry.dueAt);
          break;
        }
        lane.delete(entry);
        this.pending--;
        due.push(entry);
      }
      if (lane.size === 0) this.lanes.delete(ms);
    }
    if (next !== Infinity) this.arm(next);
    const { context } = this;
    for (const entry of due) {
      try {
        if (context === undefined) entry.callback(entry.arg);
        else context.run(entry.context, entry.callback, entry.arg);
      } catch {
        // one failing callback must not cost the others their turn
      }
    }
  };
}
