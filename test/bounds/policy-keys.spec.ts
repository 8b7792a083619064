// Breakers, bulkheads and retry budgets keyed by a key function: 10^5 distinct keys, heap after GC.
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { describe, expect, it } from 'vitest';
import { Bulkhead, CircuitBreaker, CircuitBreakerService, ResilienceModule, Retryable } from 'nest-resilience';
import { noopEventSink, PolicyRegistry, systemClock, systemRandom } from 'nest-resilience/core';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

const env = { clock: systemClock, random: systemRandom, events: noopEventSink };
const KIB = 1024;

/**
 * Documented per-key cost (docs/operations.md, "Memory bounds"), with room for V8's rounding: a
 * breaker ≈ 1.3 KB, a bulkhead ≈ 0.4 KB, a retry budget ≈ 1.5 KB, and a key of a key function
 * ≈ 10 KB (its breaker, bulkhead and budget, and up to two cached pipelines per kept key).
 */
const PER_KEY = { breaker: 2 * KIB, bulkhead: 1 * KIB, budget: 2 * KIB, keyFunction: 16 * KIB } as const;
const DEFAULT_MAX_POLICY_KEYS = 1000;
/** Heap noise of one measurement (vitest's own bookkeeping, code the flood compiled late). */
const SLACK = 1.5 * 1024 * KIB;

describe('PolicyRegistry: each kind keeps at most maxKeys keys (least recently used go first)', () => {
  const kinds = {
    breaker: (registry: PolicyRegistry, key: string) => registry.circuitBreaker(key),
    bulkhead: (registry: PolicyRegistry, key: string) => registry.bulkhead(key),
    budget: (registry: PolicyRegistry, key: string) => registry.retryBudget(key),
  } as const;

  it.each(Object.keys(kinds) as Array<keyof typeof kinds>)('%s: 10^5 distinct keys stay within maxKeys × its size', async (kind) => {
    const touch = kinds[kind];
    // compile the path on a throwaway registry, so the measurement holds only the kept state
    const warm = new PolicyRegistry(env, { maxKeys: 100 });
    await floodKeys(2_000, (i) => touch(warm, `warm-${i}`));

    const registry = new PolicyRegistry(env, { maxKeys: DEFAULT_MAX_POLICY_KEYS });
    const growth = await heapGrowthOf(() => floodKeys(FLOOD_KEYS, (i) => touch(registry, `key-${i}`)), registry);
    const bound = DEFAULT_MAX_POLICY_KEYS * PER_KEY[kind] + SLACK;
    expectWithin(`PolicyRegistry ${kind}s (10^5 keys)`, growth, bound);
    if (kind === 'breaker') {
      expect(registry.circuitBreakers()).toHaveLength(DEFAULT_MAX_POLICY_KEYS);
      // the most recent keys are the ones kept
      expect(registry.findCircuitBreaker(`key-${FLOOD_KEYS - 1}`)).toBeDefined();
      expect(registry.findCircuitBreaker('key-0')).toBeUndefined();
    }
  });

  it('without the cap the same flood costs ~100× more (what the bound protects against)', async () => {
    const registry = new PolicyRegistry(env, { maxKeys: FLOOD_KEYS });
    const growth = await heapGrowthOf(() => floodKeys(FLOOD_KEYS, (i) => registry.circuitBreaker(`key-${i}`)), registry);
    expect(growth).toBeGreaterThan(50 * DEFAULT_MAX_POLICY_KEYS * PER_KEY.breaker / 2);
  });
});

@Injectable()
class TenantCalls {
  calls = 0;

  @CircuitBreaker({ key: ({ args }) => `tenant:${String(args[0])}` })
  @Bulkhead({ maxConcurrent: 10 })
  @Retryable()
  async call(tenant: string): Promise<string> {
    this.calls++;
    return tenant;
  }
}

async function tenantApp(maxPolicyKeys?: number) {
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot(maxPolicyKeys === undefined ? {} : { maxPolicyKeys })],
    providers: [TenantCalls],
  }).compile();
  await moduleRef.init();
  return moduleRef;
}

describe('a key function on a decorated provider method (a real Nest app)', () => {
  it('10^5 distinct tenants: breakers, bulkheads, budgets and cached pipelines stay within maxPolicyKeys × ~10 KB', async () => {
    const warm = await tenantApp(100);
    await floodKeys(2_000, (i) => warm.get(TenantCalls).call(`warm-${i}`));
    await warm.close();

    const app = await tenantApp();
    const tenants = app.get(TenantCalls);
    try {
      const growth = await heapGrowthOf(() => floodKeys(FLOOD_KEYS, (i) => tenants.call(`t-${i}`)), tenants);
      const bound = DEFAULT_MAX_POLICY_KEYS * PER_KEY.keyFunction + SLACK;
      expectWithin('key function on a decorated method: breakers, bulkheads, budgets, pipelines (10^5 keys)', growth, bound);
      expect(tenants.calls).toBe(FLOOD_KEYS);
      const breakers = app.get(CircuitBreakerService).list();
      expect(breakers).toHaveLength(DEFAULT_MAX_POLICY_KEYS);
      expect(breakers.map((breaker) => breaker.key)).toContain(`tenant:t-${FLOOD_KEYS - 1}`);
    } finally {
      await app.close();
    }
  }, 120_000);
});
