import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import type { PolicyEnvironment } from '../../../lib/core/policy.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import { createPipeline } from '../../../lib/core/pipeline.js';
import { RetryBudget } from '../../../lib/core/retry-budget.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

describe('RetryBudget', () => {
  it('allows ratio × calls + floor retries in the window, then refuses', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ ratio: 0.2, window: 10_000, minRetriesPerSecond: 1 }, clock);
    for (let i = 0; i < 50; i++) budget.recordCall();
    // 0.2 × 50 + 1 × 10 = 20 retries.
    let granted = 0;
    while (budget.tryAcquireRetry()) granted++;
    expect(granted).toBe(20);
    expect(budget.totals()).toEqual({ calls: 50, retries: 20 });
  });

  it('forgets calls and retries once they leave the sliding window', async () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ ratio: 0, window: 10_000, minRetriesPerSecond: 0.2 }, clock);
    expect(budget.tryAcquireRetry()).toBe(true);
    expect(budget.tryAcquireRetry()).toBe(true);
    expect(budget.tryAcquireRetry()).toBe(false);
    await clock.advance(9_000);
    expect(budget.tryAcquireRetry()).toBe(false);
    // Retries are forgotten a bucket (window / 20) late, never early: the bound holds for every window.
    await clock.advance(1_000);
    expect(budget.totals().retries).toBe(2);
    await clock.advance(500);
    expect(budget.totals().retries).toBe(0);
    expect(budget.tryAcquireRetry()).toBe(true);
  });

  it('never grants more than ratio × calls + floor in any window, whatever the timing', async () => {
    const rng = seededRandom(7);
    const random = () => rng.next();
    const options = { ratio: 0.2, window: 1_000, minRetriesPerSecond: 5 };
    const floor = (options.minRetriesPerSecond * options.window) / 1000;
    const clock = new FakeClock();
    const budget = new RetryBudget(options, clock);
    const calls: number[] = [];
    const retries: number[] = [];
    const inWindow = (times: number[], end: number) => times.filter((time) => time > end - options.window && time <= end).length;
    for (let step = 0; step < 20_000; step++) {
      // Bursts and lulls: the load changes every few hundred steps, retries are asked for in clumps.
      const phase = Math.floor(step / 700) % 3;
      await clock.advance(Math.floor(random() * (phase === 0 ? 3 : phase === 1 ? 20 : 1)));
      if (random() < 0.6) {
        budget.recordCall();
        calls.push(clock.now());
      }
      const asks = random() < 0.3 ? 1 + Math.floor(random() * 4) : 0;
      for (let ask = 0; ask < asks; ask++) if (budget.tryAcquireRetry()) retries.push(clock.now());
    }
    expect(retries.length).toBeGreaterThan(0);
    // Every window that ends on a granted retry is the worst case for the bound.
    let worst = -Infinity;
    for (const end of retries) worst = Math.max(worst, inWindow(retries, end) - (options.ratio * inWindow(calls, end) + floor));
    expect(worst).toBeLessThanOrEqual(0);
    // ...and the budget is not stingy: with calls spread evenly it grants close to its bound.
    const steady = new RetryBudget(options, clock);
    let granted = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      await clock.advance(1);
      steady.recordCall();
      if (ms % 2 === 0 && steady.tryAcquireRetry()) granted++;
    }
    // bound over 10 s: 0.2 × 10 000 calls + 5/s × 10 s; at most 1/20 of the ratio is given up
    expect(granted).toBeGreaterThanOrEqual(0.95 * (0.2 * 10_000) + 50 - 5);
    expect(granted).toBeLessThanOrEqual(0.2 * 10_000 + 50);
  });
});

describe('retry storm under a fully failing dependency', () => {
  it('keeps total calls within 1.2 × offered load + floor × seconds', async () => {
    const clock = new FakeClock();
    const recorder = new EventRecorder();
    const env: PolicyEnvironment = { clock, random: seededRandom(42), events: recorder.sink };
    const pipeline = createPipeline({ key: 'storm', retry: { maxAttempts: 3 } }, env, new PolicyRegistry(env));
    let dependencyCalls = 0;
    const failing = async () => {
      dependencyCalls++;
      throw new UpstreamHttpError(503);
    };
    const seconds = 60;
    const perSecond = 50;
    const offered = seconds * perSecond;
    const outcomes: Array<Promise<unknown>> = [];
    for (let i = 0; i < offered; i++) {
      outcomes.push(pipeline.execute(failing).catch((error: unknown) => error));
      await clock.advance(1000 / perSecond);
    }
    await clock.runAll();
    await Promise.all(outcomes);

    const floor = 10;
    // Retries of the last calls spill a few hundred ms past the 60 s of offered load: count that second too.
    const trafficSeconds = Math.ceil(clock.now() / 1000);
    expect(trafficSeconds).toBe(seconds + 1);
    expect(dependencyCalls).toBeLessThanOrEqual(1.2 * offered + floor * trafficSeconds);
    // Without the budget, every call would have made 3 attempts.
    expect(dependencyCalls).toBeLessThan(3 * offered * 0.5);
    expect(recorder.named('budget_exhausted').length).toBeGreaterThan(offered / 2);
    // The budget still lets a meaningful share of retries through.
    expect(recorder.named('retry').length).toBeGreaterThan(0.2 * offered);
  });
});
