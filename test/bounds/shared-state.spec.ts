// Shared breakers and retry budgets on a real Redis (RedisPolicyState): 10^5 distinct keys, heap after GC.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noopEventSink, PolicyRegistry, systemClock, systemRandom } from 'nest-resilience/core';
import { RedisPolicyState } from 'nest-resilience/redis';
import { hasRedis, redisUrl, testKeyPrefix } from '../support/redis.js';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

const env = { clock: systemClock, random: systemRandom, events: noopEventSink };
const MAX_KEYS = 1000;

describe.skipIf(!hasRedis)('RedisPolicyState behind a PolicyRegistry (real redis-server)', () => {
  let client: Redis;
  beforeAll(() => {
    client = new Redis(redisUrl!, { enableAutoPipelining: true });
  });
  afterAll(() => client?.disconnect());

  /** Waits until every command sent to Redis was answered (reads of new breakers are fire and forget). */
  async function drained(): Promise<void> {
    const queue = (client as unknown as { commandQueue: { length: number } }).commandQueue;
    for (let waited = 0; queue.length > 0 && waited < 30_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    await client.ping();
  }

  async function flood(kind: 'breaker' | 'budget', registry: PolicyRegistry, keys: number, prefix: string): Promise<void> {
    await floodKeys(
      keys,
      (i) => (kind === 'breaker' ? registry.circuitBreaker(`${prefix}-${i}`, { shared: true }) : registry.retryPermits(`${prefix}-${i}`, { shared: true })),
      1_000,
    );
    await drained();
  }

  it.each(['breaker', 'budget'] as const)('10^5 shared %s keys keep maxKeys of state, listeners of pushed state included (< 8 MiB)', async (kind) => {
    const warmState = new RedisPolicyState({ client, prefix: testKeyPrefix('bounds-warm') });
    const warm = new PolicyRegistry(env, { maxKeys: 100, sharedState: warmState });
    await flood(kind, warm, 2_000, 'warm');
    warm.dispose();
    await warmState.close();

    const state = new RedisPolicyState({ client, prefix: testKeyPrefix('bounds') });
    const registry = new PolicyRegistry(env, { maxKeys: MAX_KEYS, sharedState: state });
    try {
      const growth = await heapGrowthOf(() => flood(kind, registry, FLOOD_KEYS, 'key'), registry);
      expectWithin(`RedisPolicyState shared ${kind}s (10^5 keys)`, growth, 8 * 1024 * 1024);
      if (kind === 'breaker') expect(registry.circuitBreakers()).toHaveLength(MAX_KEYS);
    } finally {
      registry.dispose();
      await state.close();
    }
  }, 120_000);
});
