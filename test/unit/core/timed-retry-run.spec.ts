// A pipeline of timeouts and a retry runs as one object per call (lib/core/timed-retry-run.ts).
// These tests hold it to the chain of the policies themselves (`TimeoutPolicy` total →
// `RetryPolicy` → `TimeoutPolicy` attempt, composed by hand through their public `execute`): for
// seeded random scenarios on the fake clock, the same outcome at the same instant, the same events,
// the same attempts with the same signals; then what only the fused run promises (nothing
// scheduled for work that settles in its first synchronous pass).
import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { DeadlineQueue } from '../../../lib/core/deadline-queue.js';
import { AttemptTimeoutError, DeadlineExceededError } from '../../../lib/core/errors.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { createPipeline } from '../../../lib/core/pipeline.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import { RetryPolicy } from '../../../lib/core/retry.policy.js';
import { TimeoutPolicy } from '../../../lib/core/timeout.policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';
import { observe } from '../../../lib/testing/observe.js';

/** What one attempt does: settle now (value or error), settle after `ms` on the clock, or never. */
type Behaviour =
  | { readonly kind: 'sync-ok' | 'sync-transient' | 'sync-fatal' | 'never' }
  | { readonly kind: 'async-ok' | 'async-transient'; readonly ms: number }
  /** runs `ms` of synchronous work (the clock moves on inside the attempt), then returns a value */
  | { readonly kind: 'busy-ok'; readonly ms: number };

interface Scenario {
  readonly total: number | undefined;
  readonly attempt: number | undefined;
  readonly maxAttempts: number | undefined;
  readonly callerDeadline: number | undefined;
  readonly abortAt: number | undefined;
  readonly behaviours: readonly Behaviour[];
}

interface Observed {
  outcome: string;
  settledAt: number;
  events: string[];
  attempts: string[];
}

/** A clock whose time can also move during synchronous work (a busy attempt). */
class BusyClock extends FakeClock {
  spin(ms: number): void {
    (this as unknown as { current: number }).current += ms;
  }
}

function describeOutcome(failed: boolean, value: unknown): string {
  if (!failed) return `value ${String(value)}`;
  if (value instanceof AttemptTimeoutError) return `AttemptTimeoutError(${value.attempt})`;
  if (value instanceof Error) return `${value.name}${'cause' in value && value.cause instanceof Error ? `<${value.cause.name}>` : ''}`;
  return `rejected ${String(value)}`;
}

async function play(scenario: Scenario, via: 'pipeline' | 'policies', withQueue: boolean): Promise<Observed> {
  const clock = new BusyClock(1000);
  const recorder = new EventRecorder();
  const base: PolicyEnvironment = { clock, random: seededRandom(7), events: recorder.sink };
  const env: PolicyEnvironment = withQueue ? { ...base, deadlines: new DeadlineQueue(clock) } : base;
  const attempts: string[] = [];
  const work = (context: PolicyContext): Promise<string> => {
    const index = context.attempt - 1;
    const behaviour = scenario.behaviours[Math.min(index, scenario.behaviours.length - 1)]!;
    const signal = context.signal;
    // what the attempt's signal says while the attempt runs (once it settled, the chain and the run
    // differ on purpose: see 'tells each attempt's leftover work that it settled' below)
    let running = true;
    signal.addEventListener('abort', () => {
      if (running) attempts.push(`${context.attempt} aborted at ${clock.now()}: ${(signal.reason as Error).name}`);
    });
    attempts.push(`${context.attempt} at ${clock.now()} until ${context.deadline}`);
    if (behaviour.kind !== 'never' && behaviour.kind !== 'async-ok' && behaviour.kind !== 'async-transient') running = false;
    switch (behaviour.kind) {
      case 'sync-ok':
        return `ok${context.attempt}` as unknown as Promise<string>;
      case 'busy-ok':
        clock.spin(behaviour.ms);
        return `busy${context.attempt}` as unknown as Promise<string>;
      case 'sync-transient':
        throw new UpstreamHttpError(503);
      case 'sync-fatal':
        throw new TypeError('bad input');
      case 'never':
        return new Promise<string>(() => undefined);
      case 'async-ok':
      case 'async-transient': {
        const { ms } = behaviour;
        return new Promise<string>((resolve, reject) => {
          clock.setTimeout(() => {
            running = false;
            if (behaviour.kind === 'async-ok') resolve(`late${context.attempt}`);
            else reject(new UpstreamHttpError(503));
          }, ms);
        });
      }
    }
  };
  const controller = new AbortController();
  if (scenario.abortAt !== undefined) clock.setTimeout(() => controller.abort(new Error('client gone')), scenario.abortAt);
  const callerDeadline = scenario.callerDeadline === undefined ? undefined : clock.now() + scenario.callerDeadline;
  const retryOptions = scenario.maxAttempts === undefined ? undefined : { maxAttempts: scenario.maxAttempts, backoff: { type: 'constant' as const, delay: 50 }, budget: false as const };
  let promise: Promise<string>;
  if (via === 'pipeline') {
    const pipeline = createPipeline({ key: 'k', timeout: { total: scenario.total, attempt: scenario.attempt }, retry: retryOptions }, env, new PolicyRegistry(env));
    promise = pipeline.execute(work, { signal: controller.signal, deadline: callerDeadline });
  } else {
    // the chain the pipeline stands for, each policy through its own public API
    const total = scenario.total !== undefined || callerDeadline !== undefined ? new TimeoutPolicy('total', scenario.total ?? Infinity, env) : undefined;
    const retry = retryOptions === undefined ? undefined : new RetryPolicy(retryOptions, env);
    // an attempt timeout that cannot fire before the total timeout is left out, as the pipeline does
    const redundant = retry === undefined && scenario.total !== undefined && scenario.attempt !== undefined && scenario.attempt >= scenario.total;
    // each attempt of a retry runs under its own token, as under an attempt timeout of Infinity
    const attemptMs = scenario.attempt ?? (retry === undefined ? undefined : Infinity);
    const attempt = attemptMs === undefined || redundant ? undefined : new TimeoutPolicy('attempt', attemptMs, env);
    const inner = (context: PolicyContext) => (attempt === undefined ? work(context) : attempt.execute(work, context));
    const retried = (context: PolicyContext) => (retry === undefined ? inner(context) : retry.execute(inner, context));
    const now = clock.now();
    const deadline = Math.min(callerDeadline ?? Infinity, scenario.total === undefined ? Infinity : now + scenario.total);
    const root: PolicyContext = { signal: controller.signal, deadline, attempt: 1, policy: 'k' };
    // no policy at all: the work's own result, a value or a throw, as a promise
    const unguarded = (context: PolicyContext): Promise<string> => {
      try {
        return Promise.resolve(retried(context));
      } catch (error) {
        return Promise.reject(error);
      }
    };
    promise = total === undefined ? unguarded(root) : total.execute(retried, root);
  }
  const observed: Observed = { outcome: 'pending', settledAt: -1, events: [], attempts };
  promise.then(
    (value) => Object.assign(observed, { outcome: describeOutcome(false, value), settledAt: clock.now() }),
    (error: unknown) => Object.assign(observed, { outcome: describeOutcome(true, error), settledAt: clock.now() }),
  );
  for (let step = 0; step < 800 && observed.settledAt === -1; step++) await clock.advance(5);
  await clock.advance(200);
  observed.events = recorder.events.map((event) => `${event.event} ${event.attempt ?? ''} ${event.outcome ?? ''} ${'durationMs' in event ? event.durationMs : ''}`).sort();
  return observed;
}

function randomScenario(random: () => number): Scenario {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const behaviour = (): Behaviour => {
    const kind = pick(['sync-ok', 'sync-transient', 'sync-fatal', 'never', 'async-ok', 'async-transient', 'busy-ok'] as const);
    if (kind === 'async-ok' || kind === 'async-transient') return { kind, ms: pick([10, 95, 101, 251, 599, 1201]) };
    if (kind === 'busy-ok') return { kind, ms: pick([5, 150, 700]) };
    return { kind };
  };
  const total = pick([undefined, 300, 500, 1000]);
  const maxAttempts = pick([undefined, 1, 2, 4]);
  let attempt = pick([undefined, 100, 200, 1000]);
  // an attempt timeout longer than the total one is refused at start-up; one as long is left out
  // without a retry, and with one both limits end at once (the chain reported both expiries, the run
  // the deadline's)
  if (total !== undefined && attempt !== undefined && attempt >= total) attempt = maxAttempts === undefined ? total : total - 1;
  return {
    total,
    attempt,
    maxAttempts,
    callerDeadline: pick([undefined, undefined, 250, 800]),
    abortAt: pick([undefined, undefined, undefined, 30, 420]),
    behaviours: [behaviour(), behaviour(), behaviour(), behaviour()],
  };
}

describe('a timeout-and-retry pipeline (one object per call)', () => {
  it('settles like the chain of its policies: same outcome, instant, events, attempts and signals (400 seeded scenarios)', async () => {
    const seeded = seededRandom(20261207);
    const random = () => seeded.next();
    // first, the scenarios that matter most, then random ones
    const chosen: Scenario[] = [
      // the first attempt times out, answers late while the second runs: the second is not settled by it
      { total: 1000, attempt: 200, maxAttempts: 3, callerDeadline: undefined, abortAt: undefined, behaviours: [{ kind: 'async-ok', ms: 251 }, { kind: 'never' }, { kind: 'sync-ok' }] },
      { total: 1000, attempt: 200, maxAttempts: 3, callerDeadline: undefined, abortAt: undefined, behaviours: [{ kind: 'async-transient', ms: 251 }, { kind: 'async-ok', ms: 101 }] },
    ];
    for (let index = 0; index < 400; index++) {
      const scenario = chosen[index] ?? randomScenario(random);
      const withQueue = index % 2 === 0;
      const expected = await play(scenario, 'policies', withQueue);
      const actual = await play(scenario, 'pipeline', withQueue);
      expect({ scenario, ...actual }, `scenario ${index}`).toEqual({ scenario, ...expected });
    }
  });

  it('schedules nothing for work that settles in its first synchronous pass, and one deadline while it runs', async () => {
    const clock = new FakeClock();
    const deadlines = new DeadlineQueue(clock);
    const env: PolicyEnvironment = { clock, random: seededRandom(1), events: new EventRecorder().sink, deadlines };
    const pipeline = createPipeline({ key: 'k', timeout: { total: 5000, attempt: 1000 }, retry: { maxAttempts: 3, budget: false } }, env, new PolicyRegistry(env));
    let sizeDuringWork = -1;
    const settled: unknown[] = [];
    pipeline.run(
      (context, settle) => {
        sizeDuringWork = deadlines.size;
        settle(false, context.attempt);
      },
      {},
      (failed, outcome) => settled.push(failed, outcome),
    );
    expect(settled).toEqual([false, 1]);
    expect(sizeDuringWork).toBe(0);
    expect(deadlines.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);

    let finish: (() => void) | undefined;
    pipeline.run(
      (_context, settle) => {
        finish = () => settle(false, 'later');
      },
      {},
      (failed, outcome) => settled.push(failed, outcome),
    );
    // the attempt's limit and the call's deadline share one deadline: the sooner, the attempt's
    expect(deadlines.size).toBe(1);
    await clock.advance(999);
    finish!();
    expect(settled).toEqual([false, 1, false, 'later']);
    expect(deadlines.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fails a synchronous attempt that ran past its limit with the limit, as a timer on time would have', async () => {
    const clock = new BusyClock();
    const env: PolicyEnvironment = { clock, random: seededRandom(1), events: new EventRecorder().sink, deadlines: new DeadlineQueue(clock) };
    const pipeline = createPipeline({ key: 'k', timeout: { total: 500 } }, env, new PolicyRegistry(env));
    const slow = pipeline.execute(() => {
      clock.spin(501);
      return Promise.resolve('too late');
    });
    await expect(slow).rejects.toBeInstanceOf(DeadlineExceededError);
    // settled within its first pass at the limit's very millisecond: on time
    const onTime = pipeline.execute(() => {
      clock.spin(500);
      return 'just in time' as unknown as Promise<string>;
    });
    await expect(onTime).resolves.toBe('just in time');
  });
});

describe('a timeout-and-retry pipeline: what the chain of policies did not say', () => {
  it('tells each attempt\'s leftover work that it settled, and work settled at its limit\'s very millisecond by a timer is late', async () => {
    const clock = new FakeClock();
    const recorder = new EventRecorder();
    const env: PolicyEnvironment = { clock, random: seededRandom(1), events: recorder.sink, deadlines: new DeadlineQueue(clock) };
    const pipeline = createPipeline({ key: 'k', timeout: { total: 5000, attempt: 100 }, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 10 }, budget: false } }, env, new PolicyRegistry(env));
    const signals: AbortSignal[] = [];
    const outcome = pipeline.execute(
      (context) =>
        new Promise<string>((resolve, reject) => {
          signals.push(context.signal);
          // the first attempt answers at its limit's very instant, the second in time
          clock.setTimeout(() => (context.attempt === 1 ? resolve('at the limit') : reject(new TypeError('not retried'))), context.attempt === 1 ? 100 : 20);
        }),
    );
    const settled = observe(outcome);
    await clock.advance(200);
    expect(settled.error).toBeInstanceOf(TypeError);
    expect(signals.map((signal) => (signal.reason as Error).name)).toEqual(['AttemptTimeoutError', 'AttemptSettledError']);
    expect(recorder.named('attempt_timeout').map((event) => event.attempt)).toEqual([1]);
  });
});
