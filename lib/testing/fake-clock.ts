import type { Clock, TimerHandle } from '../core/clock.js';

interface ScheduledTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/** Lets every queued promise callback run (a macrotask boundary drains the microtask queue). */
const drainMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A {@link Clock} that only moves when told to. Timers fire in due order during
 * {@link FakeClock.advance}, with pending promise callbacks drained between them, so retry loops,
 * timeouts and breakers run to completion deterministically and instantly.
 * @example
 * const clock = new FakeClock();
 * const done = policy.execute(work, context);
 * await clock.advance(1_000); // every timer due within the next second has fired
 * @publicApi
 */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private timers: ScheduledTimer[] = [];

  /** @param start the initial value of `now()`, in ms. @default 0 */
  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }

  /** Number of timers scheduled and not yet fired or cleared (a leak check). */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in order, and
   * draining promise callbacks after each one.
   */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await drainMicrotasks();
    for (;;) {
      const due = this.nextDue();
      if (!due || due.at > target) break;
      this.current = due.at;
      this.timers = this.timers.filter((timer) => timer !== due);
      due.callback();
      await drainMicrotasks();
    }
    this.current = target;
    await drainMicrotasks();
  }

  /**
   * Fires timers until none is left (each one may schedule more), at most `maxTimers` of them.
   * @throws Error when more than `maxTimers` fire, which usually means an endless loop.
   */
  async runAll(maxTimers = 10_000): Promise<void> {
    await drainMicrotasks();
    for (let fired = 0; ; fired++) {
      const due = this.nextDue();
      if (!due) return;
      if (fired >= maxTimers) throw new Error(`FakeClock.runAll fired ${maxTimers} timers and more are still scheduled; something reschedules forever.`);
      await this.advance(due.at - this.current);
    }
  }

  /** Drains pending promise callbacks without moving time. */
  flush(): Promise<void> {
    return drainMicrotasks();
  }

  private nextDue(): ScheduledTimer | undefined {
    let earliest: ScheduledTimer | undefined;
    for (const timer of this.timers) if (!earliest || timer.at < earliest.at) earliest = timer;
    return earliest;
  }
}
