import { describe, expect, it } from 'vitest';
import { EventRecorder } from '../../../lib/testing/index.js';

describe('EventRecorder', () => {
  it('records events in order, filters by name and clears', () => {
    const recorder = new EventRecorder();
    recorder.sink({ event: 'retry', policy: 'a', attempt: 1 });
    recorder.sink({ event: 'give_up', policy: 'a' });
    recorder.sink({ event: 'retry', policy: 'a', attempt: 2 });
    expect(recorder.events.map((e) => e.event)).toEqual(['retry', 'give_up', 'retry']);
    expect(recorder.named('retry').map((e) => e.attempt)).toEqual([1, 2]);
    const events = recorder.events;
    recorder.clear();
    expect(recorder.events).toBe(events);
    expect(recorder.events).toEqual([]);
  });
});
