import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { AttemptTimeoutError, BulkheadRejectedError, CircuitOpenError, OperationAbortedError, RetriesExhaustedError } from '../../../lib/core/errors.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { RetryBudget } from '../../../lib/core/retry-budget.js';
import { RetryPolicy } from '../../../lib/core/retry.policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';
import { observe } from '../../../lib/testing/observe.js';

function setup(seed = 42, start = 0) {
  const clock = new FakeClock(start);
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(seed), events: recorder.sink };
  return { clock, recorder, env };
}

function context(signal = new AbortController().signal, deadline = Infinity): PolicyContext {
  return { signal, deadline, attempt: 1, policy: 'test.op' };
}

const unavailable = () => new UpstreamHttpError(503);

describe('RetryPolicy attempts', () => {
  it('succeeds on the third attempt after two transient failures', async () => {
    const { clock, env, recorder } = setup();
    const seen: PolicyContext[] = [];
    const policy = new RetryPolicy({ maxAttempts: 5 }, env);
    const outcome = observe(
      policy.execute(async (ctx) => {
        seen.push(ctx);
        if (seen.length < 3) throw unavailable();
        return 'ok';
      }, context()),
    );
    await clock.runAll();
    expect(outcome).toMatchObject({ settled: true, value: 'ok' });
    expect(seen.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(seen[0]!.previousError).toBeUndefined();
    expect(seen[2]!.previousError).toBeInstanceOf(UpstreamHttpError);
    expect(recorder.named('retry').map((e) => e.attempt)).toEqual([1, 2]);
    expect(recorder.named('attempt_end').map((e) => e.outcome)).toEqual(['failure', 'failure', 'success']);
    expect(recorder.named('give_up')).toEqual([]);
  });

  it('throws RetriesExhaustedError with the last error as cause after exactly maxAttempts', async () => {
    const { clock, env, recorder } = setup();
    let calls = 0;
    const last = new UpstreamHttpError(502);
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 4 }, env).execute(async () => {
        calls++;
        throw calls === 4 ? last : unavailable();
      }, context()),
    );
    await clock.runAll();
    expect(calls).toBe(4);
    expect(outcome.error).toBeInstanceOf(RetriesExhaustedError);
    expect((outcome.error as RetriesExhaustedError).attempts).toBe(4);
    expect((outcome.error as RetriesExhaustedError).cause).toBe(last);
    expect(recorder.named('give_up')).toMatchObject([{ outcome: 'exhausted', attempt: 4, status: 502 }]);
  });

  it('runs a non-retryable 400 once and rethrows it unchanged, quietly', async () => {
    const { clock, env, recorder } = setup();
    let calls = 0;
    const badRequest = new UpstreamHttpError(400);
    const outcome = observe(
      new RetryPolicy({}, env).execute(async () => {
        calls++;
        throw badRequest;
      }, context()),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBe(badRequest);
    expect(recorder.named('give_up')).toEqual([]);
    expect(recorder.named('retry')).toEqual([]);
  });

  it.each([
    ['CircuitOpenError', new CircuitOpenError('dep', 1000)],
    ['BulkheadRejectedError', new BulkheadRejectedError('dep', 1000)],
  ])('never retries %s by default', async (_name, error) => {
    const { clock, env } = setup();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({}, env).execute(async () => {
        calls++;
        throw error;
      }, context()),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBe(error);
  });

  it('retries attempt timeouts by default', async () => {
    const { clock, env } = setup();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 2 }, env).execute(async (ctx) => {
        calls++;
        throw new AttemptTimeoutError(10, ctx.attempt);
      }, context()),
    );
    await clock.runAll();
    expect(calls).toBe(2);
    expect(outcome.error).toBeInstanceOf(RetriesExhaustedError);
  });

  it('lets abortOn win over retryOn and retryIf', async () => {
    class Flaky extends Error {}
    const { clock, env } = setup();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({ retryOn: [Flaky], abortOn: [Flaky], retryIf: () => true }, env).execute(async () => {
        calls++;
        throw new Flaky('no');
      }, context()),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBeInstanceOf(Flaky);
  });

  it('retries classes listed in retryOn and replaces the classifier with retryIf', async () => {
    class Flaky extends Error {}
    const { clock, env } = setup();
    let flakyCalls = 0;
    observe(
      new RetryPolicy({ maxAttempts: 3, retryOn: [Flaky] }, env).execute(async () => {
        flakyCalls++;
        throw new Flaky('again');
      }, context()),
    );
    let serverCalls = 0;
    observe(
      new RetryPolicy({ maxAttempts: 3, retryIf: (error) => error instanceof Flaky }, env).execute(async () => {
        serverCalls++;
        throw unavailable();
      }, context()),
    );
    await clock.runAll();
    expect(flakyCalls).toBe(3);
    expect(serverCalls).toBe(1);
  });

  it('passes the error through unchanged with maxAttempts 1', async () => {
    const { clock, env } = setup();
    const error = unavailable();
    const outcome = observe(new RetryPolicy({ maxAttempts: 1 }, env).execute(async () => Promise.reject(error), context()));
    await clock.runAll();
    expect(outcome.error).toBe(error);
  });

  it('does not retry once the hooks say the result is committed', async () => {
    const { clock, env, recorder } = setup();
    let calls = 0;
    let committed = false;
    const error = unavailable();
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 3 }, env).execute(
        async () => {
          calls++;
          committed = true;
          throw error;
        },
        context(),
        { isCommitted: () => committed },
      ),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBe(error);
    expect(recorder.named('retry')).toEqual([]);
  });
});

describe('RetryPolicy Retry-After', () => {
  it('waits max(backoff, Retry-After delta-seconds)', async () => {
    const { clock, env, recorder } = setup();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 2 }, env).execute(async () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('busy'), { status: 429, headers: { 'Retry-After': '2' } });
        return 'ok';
      }, context()),
    );
    await clock.advance(1999);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    expect(outcome.value).toBe('ok');
    expect(recorder.named('retry')[0]).toMatchObject({ delayMs: 2000, status: 429 });
  });

  it('waits until an HTTP-date Retry-After, measured on the policy clock', async () => {
    const start = Date.UTC(2025, 0, 1, 12, 0, 0);
    const { clock, env, recorder } = setup(42, start);
    let calls = 0;
    const headers = new Headers({ 'retry-after': new Date(start + 3000).toUTCString() });
    observe(
      new RetryPolicy({ maxAttempts: 2 }, env).execute(async () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('unavailable'), { response: { status: 503, headers } });
        return 'ok';
      }, context()),
    );
    await clock.advance(2999);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    expect(recorder.named('retry')[0]!.delayMs).toBe(3000);
  });

  it('keeps the backoff when it is longer than the hint', async () => {
    const { clock, env, recorder } = setup();
    observe(
      new RetryPolicy({ maxAttempts: 2, backoff: { type: 'constant', delay: 800 } }, env).execute(async () => {
        throw new UpstreamHttpError(503, { retryAfterMs: 200 });
      }, context()),
    );
    await clock.runAll();
    expect(recorder.named('retry')[0]!.delayMs).toBe(800);
  });

  it('ignores the hint when honorRetryAfter is false', async () => {
    const { clock, env, recorder } = setup();
    observe(
      new RetryPolicy({ maxAttempts: 2, honorRetryAfter: false, backoff: { type: 'constant', delay: 50 } }, env).execute(async () => {
        throw new UpstreamHttpError(503, { retryAfterMs: 20_000 });
      }, context()),
    );
    await clock.runAll();
    expect(recorder.named('retry')[0]!.delayMs).toBe(50);
  });

  it('fails at once, without sleeping, when the hint goes beyond the deadline', async () => {
    const { clock, env, recorder } = setup();
    let calls = 0;
    const error = new UpstreamHttpError(503, { retryAfterMs: 10_000 });
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 3 }, env).execute(async () => {
        calls++;
        throw error;
      }, context(undefined, 5_000)),
    );
    await clock.flush();
    expect(outcome).toMatchObject({ settled: true, error });
    expect(calls).toBe(1);
    expect(clock.pendingTimers).toBe(0);
    expect(clock.now()).toBe(0);
    expect(recorder.named('give_up')).toMatchObject([{ detail: 'deadline', attempt: 1 }]);
  });
});

describe('RetryPolicy abort', () => {
  it('settles within one tick when aborted during a backoff sleep and starts no further attempt', async () => {
    const { clock, env } = setup();
    const controller = new AbortController();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 5, backoff: { type: 'constant', delay: 1000 } }, env).execute(async () => {
        calls++;
        throw unavailable();
      }, context(controller.signal)),
    );
    await clock.advance(10);
    expect(calls).toBe(1);
    expect(clock.pendingTimers).toBe(1);
    controller.abort(new Error('client went away'));
    await clock.flush();
    expect(outcome.settled).toBe(true);
    expect(outcome.error).toBeInstanceOf(OperationAbortedError);
    expect((outcome.error as OperationAbortedError).cause).toEqual(new Error('client went away'));
    expect(clock.pendingTimers).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await clock.advance(10_000);
    expect(calls).toBe(1);
  });

  it('never starts an attempt when the signal is already aborted', async () => {
    const { env } = setup();
    const controller = new AbortController();
    controller.abort();
    let calls = 0;
    await expect(
      new RetryPolicy({}, env).execute(async () => {
        calls++;
      }, context(controller.signal)),
    ).rejects.toBeInstanceOf(OperationAbortedError);
    expect(calls).toBe(0);
  });

  it('rethrows a library abort reason as is (a deadline is not wrapped)', async () => {
    const { env } = setup();
    const controller = new AbortController();
    const reason = new CircuitOpenError('x', 5);
    controller.abort(reason);
    await expect(new RetryPolicy({}, env).execute(async () => 1, context(controller.signal))).rejects.toBe(reason);
  });

  it('does not retry a failure caused by the caller aborting mid-attempt', async () => {
    const { clock, env } = setup();
    const controller = new AbortController();
    let calls = 0;
    const outcome = observe(
      new RetryPolicy({ maxAttempts: 3 }, env).execute(async () => {
        calls++;
        controller.abort();
        throw unavailable();
      }, context(controller.signal)),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBeInstanceOf(OperationAbortedError);
  });
});

describe('RetryPolicy budget', () => {
  it('rethrows the original error and emits budget_exhausted when the budget denies a retry', async () => {
    const { clock, env, recorder } = setup();
    const budget = new RetryBudget({ ratio: 0, window: 10_000, minRetriesPerSecond: 0.1 }, clock);
    const policy = new RetryPolicy({ maxAttempts: 3 }, env, budget);
    let calls = 0;
    const error = unavailable();
    const outcome = observe(
      policy.execute(async () => {
        calls++;
        throw error;
      }, context()),
    );
    await clock.runAll();
    // floor = 0.1/s × 10 s = 1 retry in the window: the second retry is refused.
    expect(calls).toBe(2);
    expect(outcome.error).toBe(error);
    expect(recorder.named('budget_exhausted')).toMatchObject([{ attempt: 2, status: 503 }]);
  });
});
