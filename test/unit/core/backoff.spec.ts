import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { computeBackoffDelay } from '../../../lib/core/backoff.js';
import type { BackoffOptions } from '../../../lib/core/options.js';
import type { PolicyEnvironment } from '../../../lib/core/policy.js';
import { RetryPolicy } from '../../../lib/core/retry.policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

/** Runs a retry loop that always fails with a 503 and returns the recorded retry delays. */
async function recordedDelays(backoff: BackoffOptions | undefined, maxAttempts: number, maxDelay?: number): Promise<number[]> {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
  const policy = new RetryPolicy({ maxAttempts, backoff, maxDelay }, env);
  const done = policy
    .execute(
      async () => {
        throw new UpstreamHttpError(503);
      },
      { signal: new AbortController().signal, deadline: Infinity, attempt: 1, policy: 'backoff' },
    )
    .catch(() => undefined);
  await clock.runAll();
  await done;
  return recorder.named('retry').map((event) => event.delayMs!);
}

/** The same seeded sequence the policy consumes, drawn independently. */
function draws(count: number): number[] {
  const random = seededRandom(42);
  return Array.from({ length: count }, () => random.next());
}

describe('backoff sequences for seed 42', () => {
  it('default: exponential 100 ms × 2, full jitter, capped at 5 s', async () => {
    const r = draws(7);
    const expected = r.map((value, i) => Math.round(value * Math.min(5000, 100 * 2 ** i)));
    expect(await recordedDelays(undefined, 8)).toEqual(expected);
    // Pinned too, so a change of the seeded generator cannot go unnoticed.
    expect(expected).toEqual([60, 90, 341, 536, 280, 1685, 1366]);
    // The 7th retry's ceiling is 6400 ms, above maxDelay: the cap applies before jitter.
    expect(expected[6]).toBe(Math.round(r[6]! * 5000));
  });

  it('exponential with equal jitter', async () => {
    const r = draws(4);
    const expected = r.map((value, i) => {
      const ceiling = Math.min(5000, 200 * 3 ** i);
      return Math.round(ceiling / 2 + (value * ceiling) / 2);
    });
    expect(await recordedDelays({ type: 'exponential', base: 200, factor: 3, jitter: 'equal' }, 5)).toEqual(expected);
  });

  it('exponential without jitter', async () => {
    expect(await recordedDelays({ type: 'exponential', base: 100, jitter: 'none' }, 5, 500)).toEqual([100, 200, 400, 500]);
  });

  it('constant, with no jitter by default', async () => {
    expect(await recordedDelays({ type: 'constant', delay: 250 }, 4)).toEqual([250, 250, 250]);
  });

  it('constant with full jitter', async () => {
    const expected = draws(3).map((value) => Math.round(value * 250));
    expect(await recordedDelays({ type: 'constant', delay: 250, jitter: 'full' }, 4)).toEqual(expected);
  });

  it('linear, step defaulting to base', async () => {
    expect(await recordedDelays({ type: 'linear', base: 100 }, 5)).toEqual([100, 200, 300, 400]);
    expect(await recordedDelays({ type: 'linear', base: 100, step: 50 }, 4)).toEqual([100, 150, 200]);
  });

  it('decorrelated: uniform(base, 3 × previous delay), capped', async () => {
    const r = draws(6);
    const expected: number[] = [];
    let previous = 100;
    for (const value of r) {
      const delay = Math.round(Math.min(1000, 100 + value * (3 * previous - 100)));
      expected.push(delay);
      previous = delay;
    }
    expect(await recordedDelays({ type: 'decorrelated', base: 100 }, 7, 1000)).toEqual(expected);
  });

  it('maxDelay caps a delegate, and undefined falls back to the default exponential', async () => {
    const r = draws(2);
    const delegate: BackoffOptions = ({ attempt }) => (attempt === 1 ? 60_000 : attempt === 2 ? undefined : -5);
    const delays = await recordedDelays(delegate, 4, 3000);
    expect(delays).toEqual([3000, Math.round(r[0]! * 200), 0]);
  });

  it('gives the delegate the attempt, the error and the previous delay', () => {
    const seen: unknown[] = [];
    const error = new Error('x');
    computeBackoffDelay(
      (info) => {
        seen.push(info.attempt, info.error, info.previousDelay);
        return 10;
      },
      { attempt: 3, error, previousDelay: 400, random: seededRandom(1) },
      5000,
    );
    expect(seen).toEqual([3, error, 400]);
  });
});
