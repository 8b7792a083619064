import type { Clock, TimerHandle } from './clock.js';

/**
 * A pending deadline of a {@link DeadlineQueue}.
 * @internal
 */
export interface DeadlineEntry {
  /** Stops the callback from running (no-op once it ran or was cancelled). */
  cancel(): void;
}

/**
 * An object told when its deadline passes: one object can serve as the callback, where a function
 * would be one more closure per call.
 * @internal
 */
export interface DeadlineListener {
  onDeadline(): void;
}

/** What runs when a deadline passes. @internal */
export type DeadlineCallback = (() => void) | DeadlineListener;

/** Below this many cancelled entries a lane is never compacted (compacting costs more than it saves). */
const COMPACT_MIN = 256;
/** Entries behind the head are dropped once there are at least this many of them. */
const TRIM_MIN = 256;

class Entry implements DeadlineEntry {
  constructor(
    readonly lane: Lane,
    readonly deadline: number,
    public callback: DeadlineCallback | undefined,
  ) {}

  cancel(): void {
    if (this.callback === undefined) return;
    this.callback = undefined;
    this.lane.cancelled(this);
  }
}

/**
 * The entries of one delay. Scheduled with the same delay on a clock that does not go backwards,
 * their deadlines come in order, so the lane is a FIFO and one clock timer, armed for the oldest
 * live entry, serves all of them.
 */
class Lane {
  private entries: Entry[] = [];
  private head = 0;
  private live = 0;
  /** Cancelled entries behind the head (the ones compaction would drop). */
  private dead = 0;
  private timer: TimerHandle | undefined;
  /** Whether the armed timer currently keeps the process alive. */
  private holding = false;
  private firing = false;

  constructor(
    private readonly queue: DeadlineQueue,
    readonly delay: number,
    private readonly clock: Clock,
  ) {}

  add(callback: DeadlineCallback, now: number): Entry {
    const entry = new Entry(this, now + this.delay, callback);
    this.entries.push(entry);
    this.live++;
    if (this.firing) return entry;
    if (this.timer === undefined) this.arm(entry.deadline);
    else if (!this.holding) this.hold(true);
    return entry;
  }

  cancelled(entry: Entry): void {
    this.live--;
    if (this.live === 0) {
      this.entries = [];
      this.head = 0;
      this.dead = 0;
      this.idle();
      return;
    }
    if (entry === this.entries[this.head]) {
      this.head++;
      this.skipCancelled();
      return;
    }
    // Most entries are cancelled long before their deadline: drop them in bulk, so a long delay
    // under heavy traffic holds only the entries still pending.
    if (++this.dead >= COMPACT_MIN && this.dead > this.live) {
      this.entries = this.entries.slice(this.head).filter((pending) => pending.callback !== undefined);
      this.head = 0;
      this.dead = 0;
    }
  }

  private skipCancelled(): void {
    while (this.head < this.entries.length && this.entries[this.head]!.callback === undefined) {
      this.head++;
      this.dead--;
    }
    // A lane that never empties (steady traffic) would keep every passed entry: drop them once
    // they are the larger part of the array.
    if (this.head >= TRIM_MIN && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  private fire(): void {
    this.timer = undefined;
    this.holding = false;
    this.firing = true;
    const now = this.clock.now();
    try {
      this.skipCancelled();
      while (this.head < this.entries.length && this.entries[this.head]!.deadline <= now) {
        const entry = this.entries[this.head++]!;
        const callback = entry.callback!;
        entry.callback = undefined;
        this.live--;
        try {
          if (typeof callback === 'function') callback();
          else callback.onDeadline();
        } catch (error) {
          // like a timer callback: report it without losing the other deadlines
          queueMicrotask(() => {
            throw error;
          });
        }
        this.skipCancelled();
      }
    } finally {
      this.firing = false;
    }
    if (this.live > 0) {
      this.arm(this.entries[this.head]!.deadline);
      return;
    }
    this.entries = [];
    this.head = 0;
    this.dead = 0;
    this.queue.remove(this);
  }

  private arm(deadline: number): void {
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, deadline - this.clock.now()));
    this.holding = true;
  }

  /**
   * No entry is pending. A real timer is kept but stops holding the process open, so the next
   * entry does not pay for a new one; a timer that cannot be unref'd (a fake clock's) is cleared.
   */
  private idle(): void {
    if (this.timer === undefined || this.firing) return;
    if (this.hold(false)) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.holding = false;
    this.queue.remove(this);
  }

  /** Refs or unrefs the armed timer when the clock's handles support it; returns whether it could. */
  private hold(on: boolean): boolean {
    const handle = this.timer as { ref?: () => void; unref?: () => void } | undefined;
    const toggle = on ? handle?.ref : handle?.unref;
    if (typeof toggle !== 'function') return false;
    toggle.call(handle);
    this.holding = on;
    return true;
  }
}

/**
 * Timers for deadlines that are nearly always cancelled long before they pass (request timeouts):
 * entries are grouped by delay and each group shares one clock timer, so scheduling and cancelling
 * a deadline costs an array slot instead of a timer of its own (on Node 20 each timer is an async
 * resource that every AsyncLocalStorage has to copy its store into).
 *
 * Callbacks run from the shared timer, so in whatever async context armed it: a callback that
 * needs its own context (events carrying a request id) enters it itself.
 * @internal
 */
export class DeadlineQueue {
  private readonly lanes = new Map<number, Lane>();

  constructor(private readonly clock: Clock) {}

  /**
   * Runs `callback` (a function, or a listener's `onDeadline`) once `delayMs` (rounded up to a
   * whole ms) have passed on the clock, unless cancelled. Pass `now` when the caller just read the
   * clock (one read less per deadline).
   */
  schedule(delayMs: number, callback: DeadlineCallback, now: number = this.clock.now()): DeadlineEntry {
    const delay = Math.max(0, Math.ceil(delayMs));
    let lane = this.lanes.get(delay);
    if (lane === undefined) {
      lane = new Lane(this, delay, this.clock);
      this.lanes.set(delay, lane);
    }
    return lane.add(callback, now);
  }

  /** Delays with a lane right now (for leak checks). */
  get laneCount(): number {
    return this.lanes.size;
  }

  /** @internal called by a lane that no longer holds a timer. */
  remove(lane: Lane): void {
    if (this.lanes.get(lane.delay) === lane) this.lanes.delete(lane.delay);
  }
}
