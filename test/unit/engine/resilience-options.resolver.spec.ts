import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { ResilienceConfigError } from '../../../lib/core/errors.js';
import { Bulkhead } from '../../../lib/decorators/bulkhead.decorator.js';
import { CircuitBreaker } from '../../../lib/decorators/circuit-breaker.decorator.js';
import { Fallback } from '../../../lib/decorators/fallback.decorator.js';
import { Retryable } from '../../../lib/decorators/retryable.decorator.js';
import { Timeout } from '../../../lib/decorators/timeout.decorator.js';
import { UsePolicy } from '../../../lib/decorators/use-policy.decorator.js';
import type { ResilienceModuleOptions } from '../../../lib/interfaces/resilience-module-options.interface.js';
import {
  isDecorated,
  readTargetMetadata,
  resolveResilienceOptions,
  resolveTargetPolicy,
} from '../../../lib/engine/resilience-options.resolver.js';

function resolve(classRef: Function, method: string, options: ResilienceModuleOptions = {}) {
  const handler = (classRef.prototype as Record<string, Function>)[method]!;
  return resolveTargetPolicy(resolveResilienceOptions(options), readTargetMetadata(classRef, handler, method));
}

describe('resolveResilienceOptions', () => {
  it('fills in the defaults', () => {
    const options = resolveResilienceOptions(undefined);
    expect(options).toMatchObject({
      enabled: true,
      timeout: { total: 30_000, attempt: 10_000, status: 503 },
      maxPolicyKeys: 1000,
      errorMapper: undefined,
      problemTypeBase: 'https://nest-resilience.dev/problems/',
      policies: {},
    });
  });

  it('rejects an explicit attempt timeout longer than the total, naming the fix', () => {
    expect(() => resolveResilienceOptions({ timeout: { total: 1_000, attempt: 2_000 } })).toThrow(
      'ResilienceModule option timeout.attempt (2000 ms) is longer than timeout.total (1000 ms). Make timeout.attempt <= timeout.total.',
    );
  });

  it('validates every named policy at start-up', () => {
    expect(() => resolveResilienceOptions({ policies: { payments: { retry: { maxAttempts: 0 } } } })).toThrow(ResilienceConfigError);
    expect(() => resolveResilienceOptions({ policies: { payments: { retry: { maxAttempts: 0 } } } })).toThrow(/the named policy "payments"/);
    expect(() => resolveResilienceOptions({ maxPolicyKeys: 0 })).toThrow(/maxPolicyKeys is 0/);
  });
});

describe('resolveTargetPolicy', () => {
  class Plain {
    undecorated() {}

    @Timeout(500)
    timeoutOnly() {}

    @Timeout(500)
    @Retryable()
    timeoutWithRetry() {}

    @Retryable()
    retryOnly() {}

    @Timeout({ total: 5_000 })
    shortTotal() {}
  }

  it('treats a route without decorators as undecorated', () => {
    const handler = Plain.prototype.undecorated;
    expect(isDecorated(readTargetMetadata(Plain, handler, 'undecorated'))).toBe(false);
  });

  it('reads @Timeout(ms) as the total timeout without a retry, and as the attempt timeout with one', () => {
    expect(resolve(Plain, 'timeoutOnly').timeout).toEqual({ total: 500, attempt: 500 });
    expect(resolve(Plain, 'timeoutWithRetry').timeout).toEqual({ total: 30_000, attempt: 500 });
  });

  it('gives every decorated target a 30 s deadline and a 10 s attempt timeout, capped at the total', () => {
    expect(resolve(Plain, 'retryOnly').timeout).toEqual({ total: 30_000, attempt: 10_000 });
    expect(resolve(Plain, 'shortTotal').timeout).toEqual({ total: 5_000, attempt: 5_000 });
    expect(resolve(Plain, 'retryOnly', { timeout: { total: 2_000 } }).timeout).toEqual({ total: 2_000, attempt: 2_000 });
  });

  it('layers method over class over named policy over module defaults', () => {
    @Retryable({ maxAttempts: 4, maxDelay: 700 })
    @UsePolicy('payments')
    class Layered {
      @Retryable({ maxAttempts: 2 })
      method() {}

      inherited() {}
    }
    const options: ResilienceModuleOptions = {
      retry: { maxDelay: 100, honorRetryAfter: false, budget: false },
      policies: { payments: { retry: { maxDelay: 300, retryOn: [TypeError] }, timeout: { total: 9_000 } } },
    };
    const method = resolve(Layered, 'method', options);
    expect(method.retry).toEqual({ maxAttempts: 2, maxDelay: 700, honorRetryAfter: false, budget: false, retryOn: [TypeError] });
    expect(method.timeout).toEqual({ total: 9_000, attempt: 9_000 });
    expect(method.key).toBe('payments');
    expect(resolve(Layered, 'inherited', options).retry?.maxAttempts).toBe(4);
  });

  it('turns a part on only when a decorator or the named policy asks for it', () => {
    const options: ResilienceModuleOptions = { circuitBreaker: { halfOpenProbes: 2 }, bulkhead: { maxConcurrent: 5 } };
    const target = resolve(Plain, 'retryOnly', options);
    expect(target.circuitBreaker).toBeUndefined();
    expect(target.bulkhead).toBeUndefined();

    class Guarded {
      @CircuitBreaker()
      @Bulkhead({ maxQueue: 3, rejectStatus: 429 })
      method() {}
    }
    const guarded = resolve(Guarded, 'method', options);
    expect(guarded.circuitBreaker).toEqual({ halfOpenProbes: 2 });
    expect(guarded.bulkhead).toEqual({ maxConcurrent: 5, maxQueue: 3 });
    expect(guarded.bulkheadRejectStatus).toBe(429);
    expect(guarded.key).toBe('Guarded.method');
  });

  it('uses a named policy for one part with @Retryable(name), keyed by the policy name', () => {
    class Named {
      @Retryable('search')
      method() {}
    }
    const target = resolve(Named, 'method', { policies: { search: { retry: { maxAttempts: 5 }, circuitBreaker: {} } } });
    expect(target.retry).toEqual({ maxAttempts: 5 });
    expect(target.circuitBreaker).toBeUndefined();
    expect(target.key).toBe('search');
  });

  it('keys the state by @CircuitBreaker({ key }) when given', () => {
    const keyFn = () => 'per-call';
    class Keyed {
      @CircuitBreaker({ key: 'shared-geo' })
      fixed() {}

      @CircuitBreaker({ key: keyFn })
      dynamic() {}
    }
    expect(resolve(Keyed, 'fixed').key).toBe('shared-geo');
    expect(resolve(Keyed, 'dynamic').keyFn).toBe(keyFn);
    expect(resolve(Keyed, 'fixed').circuitBreaker).toEqual({});
  });

  it('classifies @Fallback sources and lets the method win over the class', () => {
    class Provider {
      fallback() {
        return 'p';
      }
    }
    const factory = () => 'f';
    @Fallback('class value')
    class Fallbacks {
      @Fallback(factory, { on: ['timeout'] })
      fromFactory() {}

      @Fallback(Provider)
      fromProvider() {}

      fromClass() {}
    }
    expect(resolve(Fallbacks, 'fromFactory').fallback).toEqual({ on: ['timeout'], source: { kind: 'factory', factory } });
    expect(resolve(Fallbacks, 'fromProvider').fallback?.source).toEqual({ kind: 'provider', provider: Provider });
    expect(resolve(Fallbacks, 'fromClass').fallback?.source).toEqual({ kind: 'value', value: 'class value' });
  });

  it('resolves the same settings whatever order the decorators are written in', () => {
    class Orders {
      @Retryable({ maxAttempts: 2 })
      @Timeout(300)
      @CircuitBreaker()
      a() {}

      @CircuitBreaker()
      @Timeout(300)
      @Retryable({ maxAttempts: 2 })
      b() {}
    }
    const { where: _a, methodName: _ma, ...a } = resolve(Orders, 'a');
    const { where: _b, methodName: _mb, ...b } = resolve(Orders, 'b');
    expect({ ...a, key: '' }).toEqual({ ...b, key: '' });
  });

  it('names the unknown policy and the known ones', () => {
    class Typo {
      @UsePolicy('paymnts')
      method() {}
    }
    expect(() => resolve(Typo, 'method', { policies: { payments: {} } })).toThrow(
      `@UsePolicy('paymnts') on Typo.method names the policy "paymnts", which is not configured. Known policies: "payments". Fix the name or add it to ResilienceModule.forRoot({ policies }).`,
    );
  });
});

describe('@Fallback()', () => {
  it('refuses a class without a fallback() method, naming the fix', () => {
    class NotAProvider {}
    expect(() => Fallback(NotAProvider)).toThrow(
      '@Fallback(NotAProvider) was given a class without a fallback() method. Implement FallbackProvider (fallback(error, ...args)) on it, or pass a factory function.',
    );
  });
});
