import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../testing/index.js';
import type { Clock, TimerHandle } from './clock.js';
import { DeadlineQueue } from './deadline-queue.js';

describe('DeadlineQueue', () => {
  it('runs each callback at its own deadline, many deadlines of one delay sharing one clock timer', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const fired: string[] = [];
    queue.schedule(100, () => fired.push(`a@${clock.now()}`));
    await clock.advance(30);
    queue.schedule(100, () => fired.push(`b@${clock.now()}`));
    queue.schedule(100, () => fired.push(`c@${clock.now()}`));
    expect(clock.pendingTimers).toBe(1);

    await clock.advance(69);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual(['a@100']);
    await clock.advance(29);
    expect(fired).toEqual(['a@100']);
    await clock.advance(1);
    expect(fired).toEqual(['a@100', 'b@130', 'c@130']);
    expect(clock.pendingTimers).toBe(0);
    expect(queue.laneCount).toBe(0);
  });

  it('calls a listener object’s onDeadline, with the object as `this`', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const listener = {
      firedAt: -1,
      onDeadline() {
        this.firedAt = clock.now();
      },
    };
    queue.schedule(50, listener);
    queue.schedule(50, { onDeadline: () => expect.unreachable('cancelled') }).cancel();
    await clock.advance(50);
    expect(listener.firedAt).toBe(50);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rounds a fractional delay up, never firing early', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const callback = vi.fn();
    queue.schedule(10.2, callback);
    await clock.advance(10);
    expect(callback).not.toHaveBeenCalled();
    await clock.advance(1);
    expect(callback).toHaveBeenCalledOnce();
  });

  it('keeps one lane per delay, each on its own timer', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const fired: number[] = [];
    queue.schedule(300, () => fired.push(300));
    queue.schedule(100, () => fired.push(100));
    queue.schedule(200, () => fired.push(200));
    expect(queue.laneCount).toBe(3);
    expect(clock.pendingTimers).toBe(3);
    await clock.advance(300);
    expect(fired).toEqual([100, 200, 300]);
  });

  it('never runs a cancelled callback, and re-arms past cancelled heads for the next live one', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const fired: string[] = [];
    const first = queue.schedule(100, () => fired.push('first'));
    await clock.advance(10);
    const second = queue.schedule(100, () => fired.push('second'));
    await clock.advance(10);
    queue.schedule(100, () => fired.push(`third@${clock.now()}`));
    first.cancel();
    second.cancel();
    second.cancel();
    await clock.advance(99);
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1);
    expect(fired).toEqual(['third@120']);
  });

  it('clears the shared timer of a fake clock once nothing is pending, so no timer outlives its work', () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    for (let i = 0; i < 100_000; i++) queue.schedule(5000, () => undefined).cancel();
    expect(clock.pendingTimers).toBe(0);
    expect(queue.laneCount).toBe(0);
  });

  it('drops cancelled entries in bulk while others stay pending, and still fires the live ones on time', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const fired: number[] = [];
    // one long-running call keeps the lane busy while 100 000 short ones come and go
    queue.schedule(30_000, () => fired.push(clock.now()));
    for (let i = 0; i < 100_000; i++) queue.schedule(30_000, () => fired.push(-1)).cancel();
    const lane = [...(queue as unknown as { lanes: Map<number, { entries: unknown[]; head: number }> }).lanes.values()][0]!;
    expect(lane.entries.length - lane.head).toBeLessThan(600);
    queue.schedule(30_000, () => fired.push(clock.now()));
    await clock.advance(30_000);
    expect(fired).toEqual([30_000, 30_000]);
  });

  it('holds only the pending entries under steady traffic that never lets the lane empty', () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    // ten calls in flight at all times, each finishing in the order it started
    const inFlight = Array.from({ length: 10 }, () => queue.schedule(5000, () => undefined));
    for (let i = 0; i < 100_000; i++) {
      inFlight.shift()!.cancel();
      inFlight.push(queue.schedule(5000, () => undefined));
    }
    const lane = [...(queue as unknown as { lanes: Map<number, { entries: unknown[] }> }).lanes.values()][0]!;
    expect(lane.entries.length).toBeLessThan(600);
    expect(clock.pendingTimers).toBe(1);
  });

  it('fires entries scheduled and cancelled by callbacks correctly', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const fired: string[] = [];
    let victim: { cancel(): void } | undefined;
    queue.schedule(50, () => {
      fired.push(`a@${clock.now()}`);
      victim?.cancel();
      queue.schedule(50, () => fired.push(`c@${clock.now()}`));
    });
    victim = queue.schedule(50, () => fired.push('victim'));
    await clock.advance(50);
    expect(fired).toEqual(['a@50']);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(50);
    expect(fired).toEqual(['a@50', 'c@100']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('reports a throwing callback without losing the other deadlines', async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock);
    const reported: unknown[] = [];
    const onError = (error: unknown) => reported.push(error);
    process.on('uncaughtException', onError);
    try {
      const after = vi.fn();
      queue.schedule(10, () => {
        throw new Error('boom');
      });
      queue.schedule(10, after);
      await clock.advance(10);
      await new Promise((resolve) => setImmediate(resolve));
      expect(after).toHaveBeenCalledOnce();
      expect(reported).toEqual([new Error('boom')]);
    } finally {
      process.off('uncaughtException', onError);
    }
  });

  it('on a real clock keeps the idle timer but stops it holding the process open, and holds again when busy', () => {
    const handles: { refed: boolean; cleared: boolean }[] = [];
    const clock: Clock = {
      now: () => 0,
      setTimeout: (): TimerHandle => {
        const handle = {
          refed: true,
          cleared: false,
          ref() {
            handle.refed = true;
          },
          unref() {
            handle.refed = false;
          },
        };
        handles.push(handle);
        return handle;
      },
      clearTimeout: (handle) => {
        (handle as { cleared: boolean }).cleared = true;
      },
    };
    const queue = new DeadlineQueue(clock);
    const first = queue.schedule(1000, () => undefined);
    expect(handles).toHaveLength(1);
    expect(handles[0]!.refed).toBe(true);
    first.cancel();
    expect(handles[0]).toEqual(expect.objectContaining({ refed: false, cleared: false }));
    queue.schedule(1000, () => undefined);
    expect(handles).toHaveLength(1);
    expect(handles[0]!.refed).toBe(true);
  });
});
