import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../lib/testing/fake-clock.js';
import { DeadlineQueue } from '../../../lib/core/deadline-queue.js';

describe('DeadlineQueue', () => {
  it('runs each callback once at its deadline, in due order across durations, on a single timer', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: string[] = [];
    queue.schedule(() => ran.push('a@100'), 100);
    queue.schedule(() => ran.push('b@30'), 30);
    await clock.advance(10);
    queue.schedule(() => ran.push('c@110'), 100);
    queue.schedule(() => ran.push('d@40'), 30);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(19);
    expect(ran).toEqual([]);
    await clock.advance(1);
    expect(ran).toEqual(['b@30']);
    await clock.advance(10);
    expect(ran).toEqual(['b@30', 'd@40']);
    await clock.advance(59);
    expect(ran).toEqual(['b@30', 'd@40']);
    await clock.advance(1);
    expect(ran).toEqual(['b@30', 'd@40', 'a@100']);
    await clock.advance(10);
    expect(ran).toEqual(['b@30', 'd@40', 'a@100', 'c@110']);
    await clock.advance(1_000);
    expect(ran).toHaveLength(4);
    expect(queue.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('never runs a cancelled deadline, and one scheduled from a callback runs at its own time', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: number[] = [];
    const cancelled = queue.schedule(() => ran.push(-1), 50);
    const beat = () => {
      ran.push(clock.now());
      if (ran.length < 3) queue.schedule(beat, 50);
    };
    queue.schedule(beat, 50);
    queue.cancel(cancelled);
    queue.cancel(cancelled);
    expect(queue.size).toBe(1);
    await clock.advance(500);
    expect(ran).toEqual([50, 100, 150]);
    expect(queue.size).toBe(0);
  });

  it('keeps running the other callbacks when one throws', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: string[] = [];
    queue.schedule(() => {
      throw new Error('boom');
    }, 10);
    queue.schedule(() => ran.push('after'), 10);
    await clock.advance(10);
    expect(ran).toEqual(['after']);
  });

  it('re-arms for an earlier deadline scheduled after a later one', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: string[] = [];
    queue.schedule(() => ran.push('late'), 1_000);
    queue.schedule(() => ran.push('early'), 5);
    await clock.advance(5);
    expect(ran).toEqual(['early']);
    expect(clock.pendingTimers).toBe(1);
  });

  it('drops its timer once nothing is pending, and keeps it while something is', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const first = queue.schedule(() => undefined, 100);
    const second = queue.schedule(() => undefined, 100);
    queue.cancel(first);
    expect(clock.pendingTimers).toBe(1);
    queue.cancel(second);
    expect(clock.pendingTimers).toBe(0);
    expect(queue.size).toBe(0);
  });

  it('with keepTimerWhenIdle, keeps its one timer across cancels (no timer per deadline) until it fires with nothing pending', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock, { keepTimerWhenIdle: true });
    const ran: string[] = [];
    for (let i = 0; i < 5; i++) queue.cancel(queue.schedule(() => ran.push(`cancelled ${i}`), 100));
    expect(clock.pendingTimers).toBe(1);
    expect(queue.size).toBe(0);
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
    expect(ran).toEqual([]);
    queue.schedule(() => ran.push('later'), 100);
    await clock.advance(100);
    expect(ran).toEqual(['later']);
  });

  it('runs each callback in the context it was scheduled from when given a DeadlineContext', async () => {
    const clock = new FakeClock(0);
    let current = 'none';
    const queue = new DeadlineQueue(clock, {
      context: {
        capture: () => current,
        run: (context, callback, arg) => {
          const outer = current;
          current = context as string;
          try {
            callback(arg);
          } finally {
            current = outer;
          }
        },
      },
    });
    const seen: string[] = [];
    current = 'request A';
    queue.schedule(() => seen.push(current), 10);
    current = 'request B';
    queue.schedule(() => seen.push(current), 20);
    current = 'none';
    await clock.advance(20);
    expect(seen).toEqual(['request A', 'request B']);
  });

  it('hands each callback the argument it was scheduled with', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const seen: string[] = [];
    const note = (name: string) => seen.push(name);
    queue.schedule(note, 10, 'first');
    queue.schedule(note, 10, 'second');
    await clock.advance(10);
    expect(seen).toEqual(['first', 'second']);
  });

  it('runs the survivors in order, once each, when many deadlines of one duration are cancelled out of order', async () => {
    const clock = new FakeClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: number[] = [];
    const deadlines = Array.from({ length: 200 }, (_, index) => queue.schedule((value) => ran.push(value), 100, index));
    // every index but multiples of 7 cancelled, from the middle outwards, so the lane is swept and compacted
    const order = deadlines.map((_, index) => index).sort((a, b) => Math.abs(a - 100) - Math.abs(b - 100));
    for (const index of order) if (index % 7 !== 0) queue.cancel(deadlines[index]!);
    for (const index of order) if (index % 7 !== 0) queue.cancel(deadlines[index]!);
    const survivors = deadlines.map((_, index) => index).filter((index) => index % 7 === 0);
    expect(queue.size).toBe(survivors.length);
    queue.cancel(deadlines[0]!);
    await clock.advance(100);
    expect(ran).toEqual(survivors.slice(1));
    expect(queue.size).toBe(0);
  });
});
