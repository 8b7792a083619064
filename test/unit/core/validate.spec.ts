import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { ResilienceConfigError } from '../../../lib/core/errors.js';
import { noopEventSink } from '../../../lib/core/events.js';
import type { PipelineSpec } from '../../../lib/core/options.js';
import { createPipeline } from '../../../lib/core/pipeline.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import { resolveBulkheadOptions, resolveCircuitBreakerOptions, resolveRetryOptions, validatePipelineSpec } from '../../../lib/core/validate.js';

const where = 'ReportsController.create';

function messageOf(spec: Omit<PipelineSpec, 'key'>): string {
  try {
    validatePipelineSpec({ key: 'reports', ...spec }, where);
  } catch (error) {
    expect(error).toBeInstanceOf(ResilienceConfigError);
    return (error as Error).message;
  }
  throw new Error('expected validatePipelineSpec to throw');
}

describe('validatePipelineSpec', () => {
  it('accepts the defaults and sensible combinations', () => {
    expect(() =>
      validatePipelineSpec(
        { key: 'k', retry: {}, timeout: { total: 30_000, attempt: 10_000 }, circuitBreaker: {}, bulkhead: {}, fallback: { handler: () => 1 } },
        where,
      ),
    ).not.toThrow();
    expect(() => validatePipelineSpec({ key: 'k', retry: { maxAttempts: 1 }, timeout: { total: 1 } }, where)).not.toThrow();
  });

  it.each([0, -1, 2.5, Number.NaN])('rejects maxAttempts %s', (maxAttempts) => {
    const message = messageOf({ retry: { maxAttempts } });
    expect(message).toContain(`Invalid resilience configuration for ${where}: retry.maxAttempts is ${maxAttempts}`);
    expect(message).toContain('must be a whole number >= 1');
  });

  it('rejects an attempt timeout longer than the total timeout', () => {
    expect(messageOf({ timeout: { total: 1000, attempt: 2000 } })).toBe(
      `Invalid resilience configuration for ${where}: timeout.attempt (2000 ms) is longer than timeout.total (1000 ms), so an attempt could never use its full time. Make timeout.attempt <= timeout.total.`,
    );
  });

  it.each([
    [{ total: 0 }, 'timeout.total is 0'],
    [{ attempt: -5 }, 'timeout.attempt is -5'],
    [{ total: Infinity }, 'timeout.total is Infinity'],
  ])('rejects non-positive timeouts %j', (timeout, fragment) => {
    const message = messageOf({ timeout });
    expect(message).toContain(fragment);
    expect(message).toContain('Set it to a positive number of milliseconds');
  });

  it('rejects retries whose maximum delays do not fit the total timeout', () => {
    // 4 retries, no-jitter ceilings 100 + 200 + 400 + 500 (maxDelay) = 1200 ms.
    const retry = { maxAttempts: 5, maxDelay: 500 };
    expect(messageOf({ retry, timeout: { total: 1200 } })).toContain(
      'the 4 retry delays can add up to 1200 ms, which is not less than timeout.total (1200 ms)',
    );
    expect(messageOf({ retry, timeout: { total: 1200 } })).toContain('Lower retry.maxAttempts, retry.maxDelay or the backoff, or raise timeout.total.');
    expect(() => validatePipelineSpec({ key: 'k', retry, timeout: { total: 1201 } }, where)).not.toThrow();
    expect(messageOf({ retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 600 } }, timeout: { total: 1000 } })).toContain('add up to 1200 ms');
  });

  it('skips the delay sum for a delegate backoff, which cannot be bounded', () => {
    expect(() => validatePipelineSpec({ key: 'k', retry: { maxAttempts: 10, backoff: () => 1 }, timeout: { total: 100 } }, where)).not.toThrow();
  });

  it('rejects bad bulkhead sizes', () => {
    expect(messageOf({ bulkhead: { maxConcurrent: 0 } })).toContain('bulkhead.maxConcurrent is 0. Set it to a whole number >= 1.');
    expect(messageOf({ bulkhead: { maxQueue: -1 } })).toContain('bulkhead.maxQueue is -1.');
  });

  it('rejects bad breaker settings', () => {
    expect(messageOf({ circuitBreaker: { halfOpenProbes: 0 } })).toContain('circuitBreaker.halfOpenProbes is 0. Set it to a whole number >= 1.');
    expect(messageOf({ circuitBreaker: { strategy: { type: 'count', failureRatio: 0 } } })).toContain(
      'circuitBreaker.strategy.failureRatio is 0, but it is a share of calls. Set it above 0 and at most 1',
    );
    expect(messageOf({ circuitBreaker: { strategy: { type: 'time', failureRatio: 1.5 } } })).toContain('failureRatio is 1.5');
    expect(() => validatePipelineSpec({ key: 'k', circuitBreaker: { strategy: { type: 'time', failureRatio: 1 } } }, where)).not.toThrow();
    expect(messageOf({ circuitBreaker: { breakDuration: 0 } })).toContain('circuitBreaker.breakDuration is 0');
  });

  it('rejects an unknown backoff type and a bad budget window', () => {
    expect(messageOf({ retry: { backoff: { type: 'fibonacci' } as never } })).toContain('retry.backoff.type is "fibonacci"');
    expect(messageOf({ retry: { budget: { window: 500 } } })).toContain('retry.budget.window is 500 ms. Set it between 1000 and 60000 ms.');
  });

  it('is applied by createPipeline', () => {
    const env = { clock: new FakeClock(), random: seededRandom(1), events: noopEventSink };
    expect(() => createPipeline({ key: 'bad', retry: { maxAttempts: 0 } }, env, new PolicyRegistry(env))).toThrow(ResilienceConfigError);
  });
});

describe('resolve*Options', () => {
  it('fill in the documented defaults', () => {
    expect(resolveRetryOptions()).toMatchObject({ maxAttempts: 3, maxDelay: 5000, retryOn: [], abortOn: [], honorRetryAfter: true });
    expect(resolveRetryOptions({ budget: false }).budget).toBe(false);
    expect(resolveCircuitBreakerOptions({ strategy: { type: 'consecutive' } }).strategy).toEqual({ type: 'consecutive', threshold: 5 });
    expect(resolveCircuitBreakerOptions({ strategy: { type: 'count' } }).strategy).toEqual({ type: 'count', size: 100, failureRatio: 0.5, minimumCalls: 100 });
    expect(resolveBulkheadOptions({ maxQueue: 3 })).toEqual({ maxConcurrent: 1000, maxQueue: 3, queueTimeout: undefined });
  });
});
