import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import {
  AttemptTimeoutError,
  BulkheadRejectedError,
  CircuitOpenError,
  DeadlineExceededError,
  OperationAbortedError,
  RetriesExhaustedError,
} from '../../../lib/core/errors.js';
import { FallbackPolicy } from '../../../lib/core/fallback.policy.js';
import type { FallbackOptions } from '../../../lib/core/options.js';
import type { PolicyContext, PolicyEnvironment } from '../../../lib/core/policy.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

function setup(options: Omit<FallbackOptions<string>, 'handler'> = {}) {
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock: new FakeClock(), random: seededRandom(42), events: recorder.sink };
  const handled: unknown[] = [];
  const policy = new FallbackPolicy<string>(
    {
      ...options,
      handler: (error, ctx) => {
        handled.push([error, ctx.policy]);
        return 'degraded';
      },
    },
    env,
  );
  return { policy, recorder, handled };
}

const context: PolicyContext = { signal: new AbortController().signal, deadline: Infinity, attempt: 1, policy: 'reports' };
const failWith = (policy: FallbackPolicy<string>, error: unknown) =>
  policy.execute<string>(async () => Promise.reject(error), context).catch((caught: unknown) => ({ rejected: caught }));

describe('FallbackPolicy', () => {
  it.each([
    ['timeout', new AttemptTimeoutError(100)],
    ['timeout', new DeadlineExceededError(100)],
    ['circuit_open', new CircuitOpenError('dep', 100)],
    ['bulkhead_rejected', new BulkheadRejectedError('dep', 100)],
    ['retries_exhausted', new RetriesExhaustedError(3, new UpstreamHttpError(503))],
  ])('catches %s by default', async (cause, error) => {
    const { policy, recorder, handled } = setup();
    expect(await failWith(policy, error)).toBe('degraded');
    expect(handled).toEqual([[error, 'reports']]);
    expect(recorder.named('fallback_used')).toMatchObject([{ policy: 'reports', outcome: cause, errorType: error.constructor.name }]);
  });

  it.each([
    ['a plain 400-like error', new UpstreamHttpError(400)],
    ['a caller abort', new OperationAbortedError('gone')],
    ['a generic error', new Error('boom')],
  ])('does not catch %s by default', async (_name, error) => {
    const { policy, recorder } = setup();
    expect(await failWith(policy, error)).toEqual({ rejected: error });
    expect(recorder.named('fallback_used')).toEqual([]);
  });

  it('catches a listed class and only the listed causes', async () => {
    class ReportServiceDown extends Error {}
    const { policy } = setup({ on: [ReportServiceDown, 'circuit_open'] });
    expect(await failWith(policy, new ReportServiceDown())).toBe('degraded');
    expect(await failWith(policy, new CircuitOpenError('dep', 1))).toBe('degraded');
    const timeout = new AttemptTimeoutError(5);
    expect(await failWith(policy, timeout)).toEqual({ rejected: timeout });
  });

  it('accepts a predicate but never catches a caller abort', async () => {
    const { policy, recorder } = setup({ on: () => true });
    expect(await failWith(policy, new Error('any'))).toBe('degraded');
    expect(recorder.named('fallback_used')[0]).toMatchObject({ outcome: 'error' });
    const abort = new OperationAbortedError();
    expect(await failWith(policy, abort)).toEqual({ rejected: abort });
  });

  it('passes successes through untouched', async () => {
    const { policy, handled } = setup();
    expect(await policy.execute(async () => 'fresh', context)).toBe('fresh');
    expect(handled).toEqual([]);
  });
});
