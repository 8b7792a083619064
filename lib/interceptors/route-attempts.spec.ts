import { defer, Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { currentSignal } from '../context/resilience-context.js';
import { Cancellation } from '../core/cancellation.js';
import { DeadlineQueue } from '../core/deadline-queue.js';
import type { ResilienceEvent } from '../core/events.js';
import { createPipeline, type PipelineSpec } from '../core/pipeline.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { UpstreamHttpError } from '../core/upstream-http.error.js';
import { runObservable } from '../resilience-pipelines.js';
import { EventRecorder, FakeClock, seededRandom } from '../testing/index.js';
import { runRouteAttempts } from './route-attempts.js';

/** What one attempt of the scripted handler does. */
type Step = { readonly after: number } & ({ readonly value: string } | { readonly error: () => unknown } | { readonly hang: true });

/** How a run ended, and what it left behind. */
interface Run {
  readonly outcome: string;
  readonly settledAt: number;
  readonly attempts: number;
  readonly events: string[];
  readonly signalsAbortedAfterSettle: boolean;
  readonly pendingTimers: number;
}

const PATHS = ['route path', 'general path'] as const;
type Path = (typeof PATHS)[number];

/**
 * Runs `steps` (one per attempt; the last repeats) through `spec` on `path`, on a fake clock, and
 * reports the outcome, when it came, the events and what was left pending.
 */
async function drive(path: Path, spec: PipelineSpec, steps: readonly Step[], options: { unsubscribeAt?: number } = {}): Promise<Run> {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(7), events: recorder.sink };
  const pipeline = createPipeline(spec, env, new PolicyRegistry(env));
  let attempts = 0;
  const signals: AbortSignal[] = [];
  const source = () =>
    defer(() => {
      const step = steps[Math.min(attempts, steps.length - 1)]!;
      attempts++;
      signals.push(currentSignal()!);
      return new Observable<string>((subscriber) => {
        if ('hang' in step) return;
        const timer = clock.setTimeout(() => {
          if ('value' in step) {
            subscriber.next(step.value);
            subscriber.complete();
          } else subscriber.error(step.error());
        }, step.after);
        return () => clock.clearTimeout(timer);
      });
    });

  let outcome = 'pending';
  let settledAt = -1;
  const result = new Observable<unknown>((subscriber) => {
    const call = { cancellation: new Cancellation(), isCommitted: () => false, store: { policy: spec.key, clock }, mapError: (error: unknown) => error };
    return path === 'route path'
      ? runRouteAttempts(pipeline.lean!, env, new DeadlineQueue(clock), source, call, subscriber)
      : runObservable(pipeline, source, { ...call, args: [], outerContext: true }, subscriber);
  });
  const subscription = result.subscribe({
    next: (value) => {
      outcome = `value ${String(value)}`;
      settledAt = clock.now();
    },
    error: (error: unknown) => {
      outcome = `${(error as Error).name}: ${(error as Error).message}`;
      settledAt = clock.now();
    },
  });
  if (options.unsubscribeAt !== undefined) {
    await clock.advance(options.unsubscribeAt);
    subscription.unsubscribe();
    outcome = 'unsubscribed';
  }
  await clock.runAll();
  return {
    outcome,
    settledAt,
    attempts,
    events: recorder.events.map(describeEvent),
    signalsAbortedAfterSettle: signals.every((signal) => signal.aborted),
    pendingTimers: clock.pendingTimers,
  };
}

function describeEvent(event: ResilienceEvent): string {
  const { event: name, attempt, outcome, delayMs, durationMs } = event as ResilienceEvent & Record<string, unknown>;
  return [name, `#${String(attempt)}`, outcome, delayMs === undefined ? '' : `delay ${String(delayMs)}`, durationMs === undefined ? '' : `${String(durationMs)} ms`]
    .filter(Boolean)
    .join(' ');
}

const unavailable = { error: () => new UpstreamHttpError(503) };
const retried: PipelineSpec = { key: 'Reports.get', timeout: { total: 5000, attempt: 1000 }, retry: { maxAttempts: 3 } };

const scenarios: { name: string; spec: PipelineSpec; steps: Step[]; unsubscribeAt?: number }[] = [
  { name: 'a first attempt that succeeds', spec: retried, steps: [{ after: 5, value: 'ok' }] },
  { name: 'two 503s, then a success', spec: retried, steps: [{ after: 5, ...unavailable }, { after: 5, ...unavailable }, { after: 5, value: 'ok' }] },
  { name: 'an attempt that hangs past its timeout, then a success', spec: retried, steps: [{ after: 0, hang: true }, { after: 5, value: 'ok' }] },
  { name: 'every attempt failing', spec: retried, steps: [{ after: 5, ...unavailable }] },
  { name: 'a 400, never retried', spec: retried, steps: [{ after: 5, error: () => new UpstreamHttpError(400) }] },
  { name: 'a Retry-After beyond the deadline', spec: retried, steps: [{ after: 5, error: () => new UpstreamHttpError(503, { retryAfterMs: 60_000 }) }] },
  {
    name: 'the total deadline passing during an attempt',
    spec: { key: 'Reports.slow', timeout: { total: 1500, attempt: 1000 }, retry: { maxAttempts: 5, backoff: { type: 'constant', delay: 100 } } },
    steps: [{ after: 0, hang: true }],
  },
  { name: 'a timeout without retries', spec: { key: 'Reports.once', timeout: { total: 200 } }, steps: [{ after: 0, hang: true }] },
  { name: 'a failure without retries', spec: { key: 'Reports.once', timeout: { total: 200 } }, steps: [{ after: 5, ...unavailable }] },
  {
    name: 'the subscriber leaving during a backoff',
    spec: { ...retried, retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 500 } } },
    steps: [{ after: 5, ...unavailable }],
    unsubscribeAt: 200,
  },
  { name: 'the subscriber leaving during an attempt', spec: retried, steps: [{ after: 0, hang: true }], unsubscribeAt: 200 },
];

describe('runRouteAttempts (the route path for timeouts and retries)', () => {
  for (const scenario of scenarios) {
    it(`behaves exactly like the general path for ${scenario.name}`, async () => {
      const [route, general] = await Promise.all(
        PATHS.map((path) => drive(path, scenario.spec, scenario.steps, { unsubscribeAt: scenario.unsubscribeAt })),
      );
      expect(route).toEqual(general);
      expect(route.signalsAbortedAfterSettle).toBe(true);
      expect(route.pendingTimers).toBe(0);
    });
  }

  it('settles on the clock exactly as the options say (spot checks of the shared scenarios)', async () => {
    const hangThenOk = await drive('route path', retried, [{ after: 0, hang: true }, { after: 5, value: 'ok' }]);
    expect(hangThenOk.outcome).toBe('value ok');
    expect(hangThenOk.attempts).toBe(2);
    expect(hangThenOk.events[0]).toBe('attempt_timeout #1 1000 ms');

    const deadline = await drive('route path', scenarios[6]!.spec, [{ after: 0, hang: true }]);
    expect(deadline.outcome).toMatch(/^DeadlineExceededError/);
    expect(deadline.settledAt).toBe(1500);
    expect(deadline.attempts).toBe(2);

    const exhausted = await drive('route path', retried, [{ after: 5, ...unavailable }]);
    expect(exhausted.outcome).toMatch(/^RetriesExhaustedError/);
    expect(exhausted.attempts).toBe(3);
  });
});
