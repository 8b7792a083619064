import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { Cancellation } from '../../../lib/core/cancellation.js';
import { AttemptTimeoutError, CircuitOpenError, DeadlineExceededError, OperationAbortedError, RetriesExhaustedError } from '../../../lib/core/errors.js';
import { noopEventSink } from '../../../lib/core/events.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import type { PipelineSpec } from '../../../lib/core/options.js';
import { createPipeline, describePipeline, PIPELINE_ORDER } from '../../../lib/core/pipeline.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import { AttemptSettledError } from '../../../lib/core/timeout.policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';
import { observe } from '../../../lib/testing/observe.js';

function setup() {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
  return { clock, recorder, env, registry: new PolicyRegistry(env) };
}

const never = () => new Promise<never>(() => undefined);

describe('describePipeline', () => {
  const parts = {
    rateLimit: { requestsPerSecond: 5 },
    circuitBreaker: { strategy: { type: 'consecutive' as const } },
    retry: { maxAttempts: 2 },
    timeout: { total: 3000, attempt: 1000 },
    bulkhead: { maxConcurrent: 5 },
    fallback: { handler: () => 'x' },
  };

  it('returns the canonical order whatever order the spec fields are given in', () => {
    const forward: PipelineSpec = { key: 'k', ...parts };
    const reversed = Object.fromEntries(Object.entries({ key: 'k', ...parts }).reverse()) as unknown as PipelineSpec;
    expect(Object.keys(reversed)[0]).toBe('fallback');
    const expected = ['fallback', 'bulkhead', 'total-timeout', 'retry', 'circuit-breaker', 'rate-limit', 'attempt-timeout'];
    expect(describePipeline(forward).map((s) => s.kind)).toEqual(expected);
    expect(describePipeline(reversed).map((s) => s.kind)).toEqual(expected);
    expect(PIPELINE_ORDER).toEqual(expected);
  });

  it('only includes the parts that are present, with defaults filled in', () => {
    const stages = describePipeline({ key: 'k', retry: {}, timeout: { attempt: 500 } });
    expect(stages.map((s) => s.kind)).toEqual(['retry', 'attempt-timeout']);
    expect(stages[0]!.options).toMatchObject({
      maxAttempts: 3,
      backoff: { type: 'exponential', base: 100, factor: 2, jitter: 'full' },
      maxDelay: 5000,
      honorRetryAfter: true,
      budget: { ratio: 0.2, window: 10_000, minRetriesPerSecond: 10 },
    });
    expect(stages[1]!.options).toEqual({ attempt: 500 });
    expect(describePipeline({ key: 'k', circuitBreaker: {}, bulkhead: {} }).map((s) => s.options)).toMatchObject([
      { maxConcurrent: 1000, maxQueue: 0 },
      { strategy: { type: 'time', window: 30_000, minimumThroughput: 100, failureRatio: 0.1 }, breakDuration: 5000, halfOpenProbes: 1 },
    ]);
  });
});

describe('createPipeline', () => {
  it('retries attempt timeouts but not the total deadline, which rejects at exactly its time', async () => {
    const { clock, env, registry, recorder } = setup();
    const pipeline = createPipeline(
      { key: 'slow', timeout: { total: 2500, attempt: 1000 }, retry: { maxAttempts: 5, backoff: { type: 'constant', delay: 100 } } },
      env,
      registry,
    );
    const signals: AbortSignal[] = [];
    const outcome = observe(
      pipeline.execute((ctx) => {
        signals.push(ctx.signal);
        return never();
      }),
    );
    await clock.advance(2499);
    expect(outcome.settled).toBe(false);
    expect(signals).toHaveLength(3);
    expect(signals[0]!.reason).toBeInstanceOf(AttemptTimeoutError);
    await clock.advance(1);
    expect(outcome.error).toBeInstanceOf(DeadlineExceededError);
    expect(signals[2]!.reason).toBeInstanceOf(DeadlineExceededError);
    expect(signals).toHaveLength(3);
    expect(recorder.named('attempt_timeout').map((e) => e.attempt)).toEqual([1, 2]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('wraps exhausted attempt timeouts in RetriesExhaustedError', async () => {
    const { clock, env, registry } = setup();
    const pipeline = createPipeline({ key: 'k', timeout: { attempt: 100 }, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 10 } } }, env, registry);
    const outcome = observe(pipeline.execute(never));
    await clock.runAll();
    expect(outcome.error).toBeInstanceOf(RetriesExhaustedError);
    expect((outcome.error as RetriesExhaustedError).cause).toBeInstanceOf(AttemptTimeoutError);
  });

  it('gives the work the attempt number, the policy key and the deadline', async () => {
    const { clock, env, registry } = setup();
    await clock.advance(1000);
    const seen: PolicyContext[] = [];
    const pipeline = createPipeline({ key: 'ctx', timeout: { total: 5000, attempt: 2000 }, retry: { backoff: { type: 'constant', delay: 0 } } }, env, registry);
    await pipeline.execute(async (ctx) => {
      seen.push(ctx);
      if (seen.length === 1) throw new UpstreamHttpError(503);
      return 'ok';
    });
    expect(seen.map((c) => [c.attempt, c.policy, c.deadline])).toEqual([
      [1, 'ctx', 3000],
      [2, 'ctx', 3000],
    ]);
  });

  it('enforces a caller deadline even without a total timeout', async () => {
    const { clock, env, registry } = setup();
    const pipeline = createPipeline({ key: 'k', retry: {} }, env, registry);
    const outcome = observe(pipeline.execute(never, { deadline: 700 }));
    await clock.advance(700);
    expect(outcome.error).toBeInstanceOf(DeadlineExceededError);
    expect(clock.pendingTimers).toBe(0);
  });

  it('counts time queued in the bulkhead against the total timeout', async () => {
    const { clock, env, registry } = setup();
    const spec: PipelineSpec = { key: 'q', bulkhead: { maxConcurrent: 1, maxQueue: 1 }, timeout: { total: 1000 } };
    const pipeline = createPipeline(spec, env, registry);
    let release: (() => void) | undefined;
    const first = observe(pipeline.execute(() => new Promise<void>((resolve) => (release = resolve))));
    await clock.advance(600);
    const second = observe(pipeline.execute(never));
    await clock.advance(100);
    release!();
    await clock.advance(899);
    expect(first.settled).toBe(true);
    expect(second.settled).toBe(false);
    await clock.advance(1);
    expect(second.error).toBeInstanceOf(DeadlineExceededError);
  });

  it('rejects at once when the caller signal is already aborted', async () => {
    const { env, registry } = setup();
    const controller = new AbortController();
    controller.abort();
    let calls = 0;
    const pipeline = createPipeline({ key: 'k' }, env, registry);
    await expect(
      pipeline.execute(async () => {
        calls++;
      }, { signal: controller.signal }),
    ).rejects.toBeInstanceOf(OperationAbortedError);
    expect(calls).toBe(0);
  });

  it('shares the breaker of a key between pipelines, and the fallback catches its refusals', async () => {
    const { env, registry } = setup();
    const breakerSpec = { strategy: { type: 'consecutive' as const, threshold: 1 } };
    const a = createPipeline({ key: 'dep', circuitBreaker: breakerSpec }, env, registry);
    const b = createPipeline({ key: 'dep', circuitBreaker: breakerSpec, fallback: { handler: () => 'cached' } }, env, registry);
    await a.execute(async () => Promise.reject(new UpstreamHttpError(500))).catch(() => undefined);
    expect(registry.findCircuitBreaker('dep')!.state).toBe('open');
    await expect(a.execute(async () => 'x')).rejects.toBeInstanceOf(CircuitOpenError);
    expect(await b.execute(async () => 'x')).toBe('cached');
  });

  it('does not retry after the result is committed', async () => {
    const { clock, env, registry } = setup();
    const pipeline = createPipeline({ key: 'k', retry: { maxAttempts: 3 } }, env, registry);
    let calls = 0;
    const outcome = observe(
      pipeline.execute(
        async () => {
          calls++;
          throw new UpstreamHttpError(503);
        },
        { isCommitted: () => true },
      ),
    );
    await clock.runAll();
    expect(calls).toBe(1);
    expect(outcome.error).toBeInstanceOf(Error);
  });

  it('leaves no listener and no timer behind after 100 000 calls on one long-lived signal or token', async () => {
    const clock = new FakeClock();
    const env: PolicyEnvironment = { clock, random: seededRandom(42), events: noopEventSink };
    const registry = new PolicyRegistry(env);
    const pipeline = createPipeline(
      {
        key: 'leak',
        timeout: { total: 5000, attempt: 1000 },
        retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 10 }, budget: false },
        circuitBreaker: { strategy: { type: 'consecutive', threshold: 1_000_000 } },
      },
      env,
      registry,
    );
    const root = new AbortController();
    const signal = root.signal;
    // the Nest adapter's path: a long-lived caller token instead of a signal (every other call)
    const caller = new Cancellation();
    const attemptSignals = new Set<AbortSignal>();
    let succeeded = 0;
    let failed = 0;
    for (let i = 0; i < 100_000; i++) {
      let attempt = 0;
      const call = pipeline.execute(
        (ctx) => {
          attempt++;
          if (i % 1000 === 0) attemptSignals.add(ctx.signal);
          if (i % 100 === 1 && attempt === 1) return Promise.reject(new UpstreamHttpError(503));
          if (i % 1000 === 2 && attempt === 1) return never();
          return Promise.resolve(i);
        },
        i % 2 === 0 ? { signal } : { cancellation: caller },
      );
      if (i % 100 === 1 || i % 1000 === 2) {
        const outcome = observe(call);
        await clock.advance(1010);
        if (outcome.error !== undefined) failed++;
        else if (outcome.settled) succeeded++;
      } else {
        await call;
        succeeded++;
      }
      // Checked on the way too, so a leak fails fast instead of slowing the loop down.
      if (i % 10_000 === 9_999) {
        expect(getEventListeners(signal, 'abort')).toHaveLength(0);
        expect(caller.listenerCount).toBe(0);
      }
    }
    expect(succeeded).toBe(100_000);
    expect(failed).toBe(0);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(caller.listenerCount).toBe(0);
    expect(caller.aborted).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    for (const attemptSignal of attemptSignals) {
      expect(getEventListeners(attemptSignal, 'abort')).toHaveLength(0);
      // a signal someone read is aborted once its attempt settled, so leftover work stops
      expect(attemptSignal.reason).toBeInstanceOf(AttemptSettledError);
    }
  });
});
