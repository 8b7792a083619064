import type { Clock, TimerHandle } from './clock.js';

/**
 * A deadline of {@link DeadlineQueue}: pass it to {@link DeadlineQueue.cancel}.
 * @publicApi
 */
export interface Deadline {
  /** When the callback runs, on the queue's clock. */
  readonly dueAt: number;
}

/** A scheduled deadline (a class, not a literal: V8 would move every entry to old space once it saw some outlive a scavenge). */
class Entry implements Deadline {
  /** Still pending: neither run nor cancelled (a cancelled entry stays in its lane until swept). */
  live = true;

  constructor(
    readonly dueAt: number,
    readonly callback: (arg: unknown) => void,
    readonly arg: unknown,
    /** What {@link DeadlineContext.capture} returned when it was scheduled. */
    readonly context: unknown,
    readonly lane: Lane,
  ) {}
}

/**
 * The pending deadlines of one duration, in scheduling (= due) order: an array with a moving head,
 * where a cancelled entry is only marked (the common cancel, of the newest or the oldest entry,
 * also pops or skips it), so a deadline costs a push and a pop instead of a hash insert and delete.
 */
interface Lane {
  readonly ms: number;
  readonly entries: Entry[];
  /** Index of the first entry not yet run or swept. */
  head: number;
  /** Entries from `head` on that are still live. */
  live: number;
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

/** Cancelled entries a lane may hold in its middle before it is compacted (and at most as many as its live ones). */
const SWEEP_AFTER = 32;

/**
 * Many timers on **one** real timer: for per-request deadlines with few distinct durations (a
 * route's lease renewal, say), where most are cancelled long before they are due. Scheduling and
 * cancelling are an array push and pop (a cancel out of order only marks its entry), no timer is
 * created or cleared per request; deadlines of one duration are kept in a lane in the order they
 * were scheduled, which is the order they fall due, so firing only looks at the head of each lane.
 *
 * Callbacks run in due order per lane, never before `dueAt` and never twice; a callback that throws
 * does not stop the others. The one timer is unref'd: pending deadlines never keep the process alive.
 * Memory: one entry per pending deadline, cancelled entries not yet swept (at most as many as the
 * pending ones, or 32 per lane), plus at most 64 empty lanes.
 * @example
 * const queue = new DeadlineQueue(systemClock);
 * const renewal = queue.schedule(() => renewLease(), 10_000);
 * // …the request finished first:
 * queue.cancel(renewal);
 * @publicApi
 */
export class DeadlineQueue {
  /** Pending deadlines by duration, each lane in scheduling (= due) order. */
  private readonly lanes = new Map<number, Lane>();
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
    if (lane === undefined) {
      lane = { ms, entries: [], head: 0, live: 0 };
      this.lanes.set(ms, lane);
    }
    const entry = new Entry(now + ms, callback as (arg: unknown) => void, arg, this.context?.capture(), lane);
    lane.entries.push(entry);
    lane.live++;
    this.pending++;
    if (entry.dueAt < this.armedFor) this.arm(entry.dueAt);
    return entry;
  }

  /** Forgets `deadline`; a deadline that already ran or was cancelled is ignored. */
  cancel(deadline: Deadline): void {
    const entry = deadline as Entry;
    if (!entry.live) return;
    entry.live = false;
    const { lane } = entry;
    lane.live--;
    sweep(lane);
    if (lane.live === 0 && this.lanes.size > MAX_LANES && this.lanes.get(lane.ms) === lane) this.lanes.delete(lane.ms);
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
      const { entries } = lane;
      for (let index = lane.head; index < entries.length; index++) {
        const entry = entries[index]!;
        if (!entry.live) continue;
        if (entry.dueAt > now) {
          next = Math.min(next, entry.dueAt);
          break;
        }
        entry.live = false;
        lane.live--;
        this.pending--;
        due.push(entry);
      }
      sweep(lane);
      if (lane.live === 0) this.lanes.delete(ms);
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

/**
 * Drops a lane's cancelled or run entries from both ends (the usual cancel: the newest deadline,
 * a call that settled before the next one was scheduled, or the oldest), and compacts the lane
 * once too many sit in its middle.
 */
function sweep(lane: Lane): void {
  const { entries } = lane;
  while (entries.length > lane.head && !entries[entries.length - 1]!.live) entries.pop();
  while (lane.head < entries.length && !entries[lane.head]!.live) lane.head++;
  if (lane.head === entries.length) {
    // pop keeps the array's capacity: the next deadline of this duration allocates nothing
    while (entries.length > 0) entries.pop();
    lane.head = 0;
    return;
  }
  const dead = entries.length - lane.head - lane.live;
  if (lane.head > SWEEP_AFTER && lane.head * 2 > entries.length) {
    entries.splice(0, lane.head);
    lane.head = 0;
  }
  if (dead > SWEEP_AFTER && dead > lane.live) {
    let kept = 0;
    for (let index = lane.head; index < entries.length; index++) {
      const entry = entries[index]!;
      if (entry.live) entries[kept++] = entry;
    }
    entries.length = kept;
    lane.head = 0;
  }
}
