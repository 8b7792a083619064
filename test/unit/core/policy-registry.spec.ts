import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import type { PolicyEnvironment } from '../../../lib/core/policy.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import { UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

function setup(maxKeys?: number) {
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock: new FakeClock(), random: seededRandom(42), events: recorder.sink };
  return { env, recorder, registry: new PolicyRegistry(env, { maxKeys }) };
}

const context = { signal: new AbortController().signal, deadline: Infinity, attempt: 1, policy: 'x' };

describe('PolicyRegistry', () => {
  it('returns one shared instance per key; the first options win', () => {
    const { registry } = setup();
    const first = registry.circuitBreaker('dep', { halfOpenProbes: 2 });
    const again = registry.circuitBreaker('dep', { halfOpenProbes: 9 });
    expect(again).toBe(first);
    expect(again.options.halfOpenProbes).toBe(2);
    expect(registry.bulkhead('dep', {})).toBe(registry.bulkhead('dep', { maxConcurrent: 1 }));
    expect(registry.retryBudget('dep', {})).toBe(registry.retryBudget('dep'));
    expect(registry.circuitBreaker('other', {})).not.toBe(first);
  });

  it('lists breaker snapshots and finds breakers without creating them', () => {
    const { registry } = setup();
    registry.circuitBreaker('a', {});
    registry.circuitBreaker('b', {}).isolate();
    expect(registry.circuitBreakers().map((s) => [s.key, s.state])).toEqual([
      ['a', 'closed'],
      ['b', 'isolated'],
    ]);
    expect(registry.findCircuitBreaker('b')?.state).toBe('isolated');
    expect(registry.findCircuitBreaker('zzz')).toBeUndefined();
    expect(registry.circuitBreakers()).toHaveLength(2);
  });

  it('evicts the least recently used closed breaker, never an open one while a closed one can go', async () => {
    const { registry } = setup(2);
    const open = registry.circuitBreaker('open', { strategy: { type: 'consecutive', threshold: 1 } });
    await open.execute(async () => Promise.reject(new UpstreamHttpError(503)), context).catch(() => undefined);
    expect(open.state).toBe('open');
    registry.circuitBreaker('closed-old', {});
    registry.circuitBreaker('closed-new', {});
    expect(registry.findCircuitBreaker('open')).toBe(open);
    expect(registry.findCircuitBreaker('closed-old')).toBeUndefined();
    expect(registry.findCircuitBreaker('closed-new')).toBeDefined();
    expect(registry.circuitBreakers()).toHaveLength(2);
  });

  it('keeps at most maxKeys entries even when every breaker is open', () => {
    const { registry } = setup(2);
    for (const key of ['a', 'b', 'c']) registry.circuitBreaker(key, {}).isolate();
    expect(registry.circuitBreakers().map((s) => s.key)).toEqual(['b', 'c']);
  });

  it('refreshes recency on use', () => {
    const { registry } = setup(2);
    registry.circuitBreaker('a', {});
    registry.circuitBreaker('b', {});
    registry.circuitBreaker('a', {});
    registry.circuitBreaker('c', {});
    expect(registry.circuitBreakers().map((s) => s.key).sort()).toEqual(['a', 'c']);
  });
});
