import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { AttemptTimeoutError, DeadlineExceededError, OperationAbortedError } from '../../../lib/core/errors.js';
import type { Clock } from '../../../lib/core/clock.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { AttemptSettledError, TimeoutPolicy } from '../../../lib/core/timeout.policy.js';
import { observe } from '../../../lib/testing/observe.js';

function setup() {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
  return { clock, recorder, env };
}

function context(signal = new AbortController().signal, deadline = Infinity, attempt = 1): PolicyContext {
  return { signal, deadline, attempt, policy: 'test.op' };
}

const never = () => new Promise<never>(() => undefined);

describe('TimeoutPolicy', () => {
  it('rejects at exactly the attempt timeout even if the work never settles, and aborts its signal', async () => {
    const { clock, env, recorder } = setup();
    let seen: PolicyContext | undefined;
    const outcome = observe(
      new TimeoutPolicy('attempt', 1000, env).execute((ctx) => {
        seen = ctx;
        return never();
      }, context(undefined, Infinity, 2)),
    );
    await clock.advance(999);
    expect(outcome.settled).toBe(false);
    expect(seen!.signal.aborted).toBe(false);
    expect(seen!.deadline).toBe(1000);
    await clock.advance(1);
    expect(outcome.error).toBeInstanceOf(AttemptTimeoutError);
    expect(outcome.error).toMatchObject({ timeoutMs: 1000, attempt: 2 });
    expect(seen!.signal.reason).toBe(outcome.error);
    expect(recorder.named('attempt_timeout')).toMatchObject([{ attempt: 2, durationMs: 1000, policy: 'test.op' }]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects at the total deadline with DeadlineExceededError and aborts the signal with it', async () => {
    const { clock, env, recorder } = setup();
    let signal: AbortSignal | undefined;
    const outcome = observe(
      new TimeoutPolicy('total', 500, env).execute((ctx) => {
        signal = ctx.signal;
        return never();
      }, context()),
    );
    await clock.advance(500);
    expect(outcome.error).toBeInstanceOf(DeadlineExceededError);
    expect(signal!.reason).toBe(outcome.error);
    expect(recorder.named('deadline_exceeded')).toHaveLength(1);
  });

  it('ends a total timeout at the context deadline when that comes first', async () => {
    const { clock, env } = setup();
    const outcome = observe(new TimeoutPolicy('total', 10_000, env).execute(never, context(undefined, 300)));
    await clock.advance(299);
    expect(outcome.settled).toBe(false);
    await clock.advance(1);
    expect(outcome.error).toBeInstanceOf(DeadlineExceededError);
  });

  it('fails a total timeout at once when the deadline has already passed, without running the work', async () => {
    const { clock, env } = setup();
    await clock.advance(100);
    let calls = 0;
    await expect(
      new TimeoutPolicy('total', 1000, env).execute(async () => {
        calls++;
      }, context(undefined, 50)),
    ).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(calls).toBe(0);
  });

  it('returns the value, clears the timer and aborts the settled attempt signal so stray work stops', async () => {
    const { clock, env } = setup();
    const parent = new AbortController();
    let signal: AbortSignal | undefined;
    const value = await new TimeoutPolicy('attempt', 1000, env).execute(async (ctx) => {
      signal = ctx.signal;
      return 42;
    }, context(parent.signal));
    expect(value).toBe(42);
    expect(clock.pendingTimers).toBe(0);
    expect(signal!.aborted).toBe(true);
    expect(signal!.reason).toBeInstanceOf(AttemptSettledError);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
  });

  it('lets the limit decide when the work settles after it but before its timer ran (a late event loop)', async () => {
    // Node runs timers list by list: after a blocked loop, a longer timer armed in the same tick can
    // fire before the limit's. This clock never runs timers on its own, so the work can settle late.
    let now = 0;
    const timers: Array<() => void> = [];
    const clock: Clock = {
      now: () => now,
      setTimeout: (callback) => timers.push(callback),
      clearTimeout: () => undefined,
    };
    const recorder = new EventRecorder();
    const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
    const run = (settleAt: number, outcome: 'value' | 'error') => {
      let resolve!: () => void;
      let signal: AbortSignal | undefined;
      const result = observe(
        new TimeoutPolicy('attempt', 40, env).execute((ctx) => {
          signal = ctx.signal;
          return new Promise<string>((ok, fail) => (resolve = () => (outcome === 'value' ? ok('late value') : fail(new Error('late failure')))));
        }, context()),
      );
      now += settleAt;
      resolve();
      return { result, signal: () => signal! };
    };

    const late = run(41, 'value');
    await Promise.resolve();
    await Promise.resolve();
    expect(late.result.error).toBeInstanceOf(AttemptTimeoutError);
    expect(late.result.error).toMatchObject({ timeoutMs: 40 });
    expect(late.signal().reason).toBe(late.result.error);
    expect(recorder.named('attempt_timeout')).toHaveLength(1);

    const lateFailure = run(200, 'error');
    await Promise.resolve();
    await Promise.resolve();
    expect(lateFailure.result.error).toBeInstanceOf(AttemptTimeoutError);

    const inTime = run(40, 'value');
    await Promise.resolve();
    await Promise.resolve();
    expect(inTime.result.value).toBe('late value');
    expect(recorder.named('attempt_timeout')).toHaveLength(2);
  });

  it('passes the work its own error unchanged', async () => {
    const { env } = setup();
    const error = new Error('boom');
    await expect(new TimeoutPolicy('attempt', 1000, env).execute(async () => Promise.reject(error), context())).rejects.toBe(error);
  });

  it('turns a synchronous throw into a rejection', async () => {
    const { env } = setup();
    const error = new Error('sync');
    await expect(
      new TimeoutPolicy('attempt', 1000, env).execute(() => {
        throw error;
      }, context()),
    ).rejects.toBe(error);
  });

  it('rejects with OperationAbortedError when the caller aborts, and aborts the work', async () => {
    const { clock, env } = setup();
    const parent = new AbortController();
    let signal: AbortSignal | undefined;
    const outcome = observe(
      new TimeoutPolicy('attempt', 1000, env).execute((ctx) => {
        signal = ctx.signal;
        return never();
      }, context(parent.signal)),
    );
    await clock.flush();
    parent.abort('client closed');
    await clock.flush();
    expect(outcome.error).toBeInstanceOf(OperationAbortedError);
    expect((outcome.error as OperationAbortedError).cause).toBe('client closed');
    expect(signal!.aborted).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('passes a parent deadline through as is', async () => {
    const { clock, env } = setup();
    const parent = new AbortController();
    const outcome = observe(new TimeoutPolicy('attempt', 1000, env).execute(never, context(parent.signal)));
    const deadline = new DeadlineExceededError(500);
    parent.abort(deadline);
    await clock.flush();
    expect(outcome.error).toBe(deadline);
  });
});
