import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { BulkheadPolicy } from '../../../lib/core/bulkhead.policy.js';
import { BulkheadRejectedError, OperationAbortedError } from '../../../lib/core/errors.js';
import type { BulkheadOptions } from '../../../lib/core/options.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { observe } from '../../../lib/testing/observe.js';

function setup(options: BulkheadOptions) {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
  return { clock, recorder, bulkhead: new BulkheadPolicy('dep', options, env) };
}

function context(signal = new AbortController().signal, deadline = Infinity): PolicyContext {
  return { signal, deadline, attempt: 1, policy: 'dep' };
}

/** Work that runs until its `finish()` is called, recording that it started. */
function gate() {
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const work = (name: string) => () =>
    new Promise<string>((resolve) => {
      started.push(name);
      finishers.set(name, () => resolve(name));
    });
  return { started, work, finish: (name: string) => finishers.get(name)!() };
}

describe('BulkheadPolicy', () => {
  it('with 2 slots and 1 queue place, of four calls two run, one waits and one is rejected', async () => {
    const { bulkhead, clock, recorder } = setup({ maxConcurrent: 2, maxQueue: 1 });
    const { started, work, finish } = gate();
    const a = observe(bulkhead.execute(work('a'), context()));
    const b = observe(bulkhead.execute(work('b'), context()));
    const c = observe(bulkhead.execute(work('c'), context()));
    const d = observe(bulkhead.execute(work('d'), context()));
    await clock.flush();
    expect(started).toEqual(['a', 'b']);
    expect([bulkhead.active, bulkhead.queued]).toEqual([2, 1]);
    expect(d.error).toBeInstanceOf(BulkheadRejectedError);
    expect(d.error).toMatchObject({ reason: 'full', retryAfterMs: 1000, policy: 'dep' });
    expect(recorder.named('bulkhead_rejected')).toMatchObject([{ policy: 'dep', detail: 'full' }]);

    finish('a');
    await clock.flush();
    expect(a.value).toBe('a');
    expect(started).toEqual(['a', 'b', 'c']);
    expect([bulkhead.active, bulkhead.queued]).toEqual([2, 0]);
    finish('b');
    finish('c');
    await clock.flush();
    expect([b.value, c.value]).toEqual(['b', 'c']);
    expect([bulkhead.active, bulkhead.queued]).toEqual([0, 0]);
  });

  it('removes a queued call whose deadline passes; it never runs', async () => {
    const { bulkhead, clock } = setup({ maxConcurrent: 1, maxQueue: 5 });
    const { started, work, finish } = gate();
    bulkhead.execute(work('a'), context()).catch(() => undefined);
    const queued = observe(bulkhead.execute(work('late'), context(undefined, 300)));
    await clock.advance(299);
    expect(queued.settled).toBe(false);
    await clock.advance(1);
    expect(queued.error).toBeInstanceOf(BulkheadRejectedError);
    expect(queued.error).toMatchObject({ reason: 'queue_timeout' });
    expect(bulkhead.queued).toBe(0);
    finish('a');
    await clock.runAll();
    expect(started).toEqual(['a']);
    expect(bulkhead.active).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('bounds the queue wait by queueTimeout', async () => {
    const { bulkhead, clock } = setup({ maxConcurrent: 1, maxQueue: 1, queueTimeout: 50 });
    const { work } = gate();
    bulkhead.execute(work('a'), context()).catch(() => undefined);
    const queued = observe(bulkhead.execute(work('b'), context()));
    await clock.advance(50);
    expect(queued.error).toMatchObject({ reason: 'queue_timeout' });
  });

  it('removes a queued call when its signal aborts; it never runs', async () => {
    const { bulkhead, clock } = setup({ maxConcurrent: 1, maxQueue: 1 });
    const { started, work, finish } = gate();
    const controller = new AbortController();
    bulkhead.execute(work('a'), context()).catch(() => undefined);
    const queued = observe(bulkhead.execute(work('b'), context(controller.signal)));
    await clock.flush();
    expect(bulkhead.queued).toBe(1);
    controller.abort();
    await clock.flush();
    expect(queued.error).toBeInstanceOf(OperationAbortedError);
    expect(bulkhead.queued).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // The freed queue place is usable, and the slot goes to the next live waiter.
    const next = observe(bulkhead.execute(work('c'), context()));
    finish('a');
    await clock.flush();
    expect(started).toEqual(['a', 'c']);
    finish('c');
    await clock.flush();
    expect(next.value).toBe('c');
  });

  it('releases the slot when the work fails', async () => {
    const { bulkhead } = setup({ maxConcurrent: 1 });
    await expect(bulkhead.execute(async () => Promise.reject(new Error('x')), context())).rejects.toThrow('x');
    expect(bulkhead.active).toBe(0);
    expect(await bulkhead.execute(async () => 'again', context())).toBe('again');
  });

  it('rejects a queued call at once when its deadline has already passed', async () => {
    const { bulkhead, clock } = setup({ maxConcurrent: 1, maxQueue: 1 });
    const { work } = gate();
    await clock.advance(10);
    bulkhead.execute(work('a'), context()).catch(() => undefined);
    await expect(bulkhead.execute(work('b'), context(undefined, 5))).rejects.toMatchObject({ reason: 'queue_timeout' });
    expect(bulkhead.queued).toBe(0);
  });
});
