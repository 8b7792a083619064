// EventRecorder (nest-resilience/testing): 10^5 events, heap after GC.
import { describe, expect, it } from 'vitest';
import { EventRecorder } from 'nest-resilience/testing';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

describe('EventRecorder', () => {
  it('10^5 events with distinct policies keep the newest 10,000 (< 4 MiB)', async () => {
    const warm = new EventRecorder({ capacity: 100 });
    await floodKeys(2_000, (i) => warm.sink({ event: 'retry', policy: `warm-${i}`, attempt: 1 }));

    const recorder = new EventRecorder();
    const growth = await heapGrowthOf(() => floodKeys(FLOOD_KEYS, (i) => recorder.sink({ event: 'retry', policy: `policy-${i}`, attempt: i })), recorder);
    expectWithin('EventRecorder (10^5 events)', growth, 4 * 1024 * 1024);
    expect(recorder.events).toHaveLength(10_000);
    expect(recorder.dropped).toBe(FLOOD_KEYS - 10_000);
    expect(recorder.events[0]!.policy).toBe(`policy-${FLOOD_KEYS - 10_000}`);
    expect(recorder.events.at(-1)!.policy).toBe(`policy-${FLOOD_KEYS - 1}`);
  });

  it('refuses a capacity that is not a whole number >= 1, naming an example', () => {
    expect(() => new EventRecorder({ capacity: 0 })).toThrow(/capacity must be a whole number >= 1 \(got 0\); e\.g\. new EventRecorder\(\{ capacity: 1000 \}\)/);
  });
});
