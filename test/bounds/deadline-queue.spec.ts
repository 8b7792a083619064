// DeadlineQueue (lease renewals of requests in flight, the Redis store's command deadlines): 10^5
// distinct durations, each scheduled and cancelled, heap after GC.
import { describe, expect, it } from 'vitest';
import { DeadlineQueue, type Clock } from 'nest-resilience/core';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

/**
 * The system clock, with timer handles Node does not see as unref'd: Node keeps the list of an
 * unref'd timer's duration until that duration has passed (its own structure, bounded by time),
 * which would hide the queue's own figure behind Node's.
 */
const clock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => ({ timer: setTimeout(callback, ms) }),
  clearTimeout: (handle) => clearTimeout((handle as { timer: NodeJS.Timeout }).timer),
};

describe('DeadlineQueue', () => {
  it('10^5 distinct durations scheduled and cancelled keep at most 64 empty lanes (< 1 MiB)', async () => {
    const warm = new DeadlineQueue(clock);
    await floodKeys(5_000, (i) => warm.cancel(warm.schedule(() => undefined, 1_000 + i)));

    const queue = new DeadlineQueue(clock);
    const growth = await heapGrowthOf(() => floodKeys(FLOOD_KEYS, (i) => queue.cancel(queue.schedule(() => undefined, 1_000 + i))), queue);
    expectWithin('DeadlineQueue lanes (10^5 distinct durations)', growth, 1024 * 1024);
    expect(queue.size).toBe(0);
  });

  it('still fires a deadline whose lane was dropped and made again', async () => {
    const queue = new DeadlineQueue(clock);
    for (let i = 0; i < 200; i++) queue.cancel(queue.schedule(() => undefined, 10 + i));
    const fired = await new Promise<string>((resolve) => queue.schedule(resolve, 15, 'fired'));
    expect(fired).toBe('fired');
  });
});
