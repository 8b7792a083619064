import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { CircuitBreakerPolicy } from '../../../lib/core/circuit-breaker.policy.js';
import { CircuitOpenError, OperationAbortedError } from '../../../lib/core/errors.js';
import type { CircuitBreakerOptions } from '../../../lib/core/options.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

function setup(options: CircuitBreakerOptions) {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
  return { clock, recorder, breaker: new CircuitBreakerPolicy('dep', options, env) };
}

function context(signal = new AbortController().signal): PolicyContext {
  return { signal, deadline: Infinity, attempt: 1, policy: 'dep' };
}

const fail = (breaker: CircuitBreakerPolicy, status = 503) =>
  breaker.execute(async () => Promise.reject(new UpstreamHttpError(status)), context()).catch((error: unknown) => error);
const succeed = (breaker: CircuitBreakerPolicy) => breaker.execute(async () => 'ok', context());

describe('CircuitBreakerPolicy strategies', () => {
  it('consecutive: opens after threshold failures in a row; a success resets the count', async () => {
    const { breaker, recorder } = setup({ strategy: { type: 'consecutive', threshold: 3 } });
    await fail(breaker);
    await fail(breaker);
    await succeed(breaker);
    await fail(breaker);
    await fail(breaker);
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
    expect(recorder.named('breaker_opened')).toMatchObject([{ policy: 'dep', from: 'closed', detail: 'consecutive', delayMs: 5000 }]);
  });

  it('count: judges the failure ratio of the last `size` calls once minimumCalls is reached', async () => {
    const { breaker } = setup({ strategy: { type: 'count', size: 10, minimumCalls: 10, failureRatio: 0.5 } });
    for (let i = 0; i < 5; i++) await succeed(breaker);
    for (let i = 0; i < 4; i++) await fail(breaker);
    expect(breaker.state).toBe('closed'); // 9 calls < minimumCalls
    await fail(breaker);
    expect(breaker.state).toBe('open'); // 5 of 10 failed
  });

  it('count: old outcomes leave the window', async () => {
    const { breaker } = setup({ strategy: { type: 'count', size: 4, minimumCalls: 4, failureRatio: 0.75 } });
    await fail(breaker);
    await fail(breaker);
    await succeed(breaker);
    await succeed(breaker); // window F F S S = 0.5
    await succeed(breaker); // window F S S S = 0.25
    await fail(breaker); // window S S S F = 0.25
    expect(breaker.snapshot()).toMatchObject({ state: 'closed', bufferedCalls: 4, failureRate: 0.25 });
  });

  it('time: judges the calls of the last window once minimumThroughput is reached; old calls expire', async () => {
    const { breaker, clock } = setup({ strategy: { type: 'time', window: 10_000, minimumThroughput: 4, failureRatio: 0.5 } });
    await fail(breaker);
    await fail(breaker);
    await fail(breaker);
    await clock.advance(10_000); // those three left the window
    await succeed(breaker);
    await fail(breaker);
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
    expect(breaker.snapshot().bufferedCalls).toBe(3);
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('defaults to the time window 30 s / 100 calls / 10 %', async () => {
    const { breaker } = setup({});
    for (let i = 0; i < 89; i++) await succeed(breaker);
    for (let i = 0; i < 10; i++) await fail(breaker);
    expect(breaker.state).toBe('closed'); // 99 calls
    await fail(breaker);
    expect(breaker.state).toBe('open'); // 11 of 100
  });

  it('opens on the slow-call rate', async () => {
    const { breaker, clock } = setup({ strategy: { type: 'count', size: 4, minimumCalls: 4, failureRatio: 1 }, slowCall: { duration: 1000, rateThreshold: 0.5 } });
    const slow = () =>
      breaker.execute(async () => {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 1500));
        return 'late';
      }, context());
    await succeed(breaker);
    await succeed(breaker);
    const first = slow();
    await clock.advance(1500);
    await first;
    expect(breaker.state).toBe('closed');
    const second = slow();
    await clock.advance(1500);
    await second;
    expect(breaker.state).toBe('open');
    expect(breaker.snapshot()).toMatchObject({ slowCallRate: 0.5, failureRate: 0 });
  });
});

describe('CircuitBreakerPolicy open / half-open / closed', () => {
  it('fails fast while open, with retryAfterMs counting down, without calling fn', async () => {
    const { breaker, clock, recorder } = setup({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 5000 });
    await fail(breaker);
    await clock.advance(2000);
    let calls = 0;
    const error = await breaker
      .execute(async () => {
        calls++;
      }, context())
      .catch((caught: unknown) => caught);
    expect(calls).toBe(0);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect((error as CircuitOpenError).retryAfterMs).toBe(3000);
    expect(recorder.named('breaker_rejected')).toMatchObject([{ policy: 'dep', detail: 'open' }]);
    expect(breaker.snapshot()).toMatchObject({ state: 'open', openedAt: 0, retryAfterMs: 3000, notPermittedCalls: 1 });
  });

  it('half-opens after breakDuration and closes after a successful probe', async () => {
    const { breaker, clock, recorder } = setup({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 5000 });
    await fail(breaker);
    await clock.advance(4999);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half_open');
    expect(await succeed(breaker)).toBe('ok');
    expect(breaker.state).toBe('closed');
    expect(recorder.events.map((e) => e.event)).toEqual(['breaker_opened', 'breaker_half_opened', 'breaker_closed']);
    expect(recorder.named('breaker_closed')[0]).toMatchObject({ from: 'half_open' });
  });

  it('admits exactly halfOpenProbes of 100 concurrent callers; the rest fail fast with retryAfterMs > 0', async () => {
    const { breaker, clock } = setup({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 5000, halfOpenProbes: 3 });
    await fail(breaker);
    await clock.advance(5000);
    let reached = 0;
    const release: Array<() => void> = [];
    const callers = Array.from({ length: 100 }, () =>
      breaker
        .execute(async () => {
          reached++;
          await new Promise<void>((resolve) => release.push(resolve));
          return 'probe';
        }, context())
        .then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        ),
    );
    await clock.flush();
    expect(reached).toBe(3);
    release.forEach((resolve) => resolve());
    const results = await Promise.all(callers);
    const rejected = results.filter((r): r is { error: unknown } => 'error' in r);
    expect(rejected).toHaveLength(97);
    for (const { error } of rejected) {
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect((error as CircuitOpenError).retryAfterMs).toBeGreaterThan(0);
    }
    expect(breaker.state).toBe('closed');
  });

  it('stays half-open until every probe succeeded', async () => {
    const { breaker, clock } = setup({ strategy: { type: 'consecutive', threshold: 1 }, halfOpenProbes: 2 });
    await fail(breaker);
    await clock.advance(5000);
    await succeed(breaker);
    expect(breaker.state).toBe('half_open');
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
  });

  it('re-opens on a failed probe, for a growing break when breakDuration is a backoff', async () => {
    const { breaker, clock, recorder } = setup({
      strategy: { type: 'consecutive', threshold: 1 },
      breakDuration: { type: 'exponential', base: 1000, factor: 2, jitter: 'none' },
      maxBreakDuration: 3000,
    });
    await fail(breaker);
    await clock.advance(1000);
    await fail(breaker);
    expect(breaker.state).toBe('open');
    await clock.advance(1999);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    await fail(breaker);
    await clock.advance(3000);
    expect(breaker.state).toBe('half_open');
    await succeed(breaker);
    await fail(breaker);
    expect(recorder.named('breaker_opened').map((e) => [e.detail, e.delayMs])).toEqual([
      ['consecutive', 1000],
      ['probe_failed', 2000],
      ['probe_failed', 3000],
      ['consecutive', 1000],
    ]);
  });

  it('does not count 4xx answers (except 408/429) as failures', async () => {
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 2 } });
    for (const status of [400, 404, 422, 401]) await fail(breaker, status);
    expect(breaker.state).toBe('closed');
    await fail(breaker, 429);
    await fail(breaker, 408);
    expect(breaker.state).toBe('open');
  });

  it('ignores caller aborts', async () => {
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 1 } });
    const controller = new AbortController();
    controller.abort();
    await breaker.execute(async () => Promise.reject(new OperationAbortedError()), context()).catch(() => undefined);
    await breaker.execute(async () => Promise.reject(new UpstreamHttpError(503)), context(controller.signal)).catch(() => undefined);
    expect(breaker.state).toBe('closed');
  });

  it('ignores outcomes of calls admitted before a transition', async () => {
    const { breaker, clock } = setup({ strategy: { type: 'consecutive', threshold: 1 } });
    let finishSlow: (() => void) | undefined;
    const slow = breaker
      .execute(() => new Promise<string>((_, reject) => (finishSlow = () => reject(new UpstreamHttpError(503)))), context())
      .catch(() => undefined);
    await fail(breaker);
    await clock.advance(5000);
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
    finishSlow!();
    await slow;
    expect(breaker.state).toBe('closed');
  });

  it('isolate() refuses every call until reset()', async () => {
    const { breaker, clock, recorder } = setup({});
    breaker.isolate();
    expect(breaker.state).toBe('isolated');
    await clock.advance(600_000);
    const error = await succeed(breaker).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect((error as CircuitOpenError).retryAfterMs).toBeGreaterThan(0);
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(await succeed(breaker)).toBe('ok');
    expect(recorder.named('breaker_opened')[0]).toMatchObject({ detail: 'isolated', from: 'closed' });
    expect(recorder.named('breaker_closed')[0]).toMatchObject({ from: 'isolated' });
  });

  it('reset() forgets recorded failures', async () => {
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 2 } });
    await fail(breaker);
    breaker.reset();
    await fail(breaker);
    expect(breaker.state).toBe('closed');
  });
});
