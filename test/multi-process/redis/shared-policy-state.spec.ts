import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingDependency } from '../../fixtures/counting-dependency.js';
import { requireBuilt, spawnApp, stopAll, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const APP = join('build', 'test', 'fixtures', 'shared-state', 'shared-state.app.js');
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, APP), join(root, 'test/fixtures/shared-state/shared-state.app.ts')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
  [join(root, 'dist/core/circuit-breaker.policy.js'), join(root, 'lib/core/circuit-breaker.policy.ts')],
  [join(root, 'dist/core/shared-policy-state.js'), join(root, 'lib/core/shared-policy-state.ts')],
];

type Instance = SpawnedApp;

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function startInstance(name: string, env: Record<string, string>): Promise<Instance> {
  return spawnApp(root, APP, name, env);
}

async function get(instance: Instance, path: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${instance.url}${path}`);
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    // not a problem document
  }
  return { status: res.status, code };
}

const events = (instance: Instance, name: string, policy?: string) =>
  instance.lines
    .filter((text) => text.startsWith('EVENT '))
    .map((text) => JSON.parse(text.slice(6)) as { event: string; policy: string })
    .filter((event) => event.event === name && (policy === undefined || event.policy === policy));

// The instances' Redis clients: all ioredis, then a fleet that mixes both libraries (same scripts, keys and channel).
const FLEETS = [
  ['ioredis', 'ioredis', 'ioredis'],
  ['ioredis', 'node-redis', 'node-redis'],
] as const;

describe.skipIf(!hasRedis).each(FLEETS)('three app instances (separate Node processes) sharing one Redis, clients %s, %s, %s', (...clients) => {
  const dependency = new CountingDependency();
  let instances: Instance[] = [];

  beforeAll(async () => {
    requireBuilt(builtFrom);
    await dependency.start();
    const env = { REDIS_URL: redisUrl!, DOWNSTREAM: dependency.url, PREFIX: testKeyPrefix('shared-state') };
    instances = await Promise.all(['i0', 'i1', 'i2'].map((name, index) => startInstance(name, { ...env, REDIS_CLIENT: clients[index]! })));
  }, 60_000);

  afterAll(async () => {
    await stopAll(instances);
    await dependency.close();
  });

  it('the shared breaker opens on all three once their failures together reach the threshold; each alone stays under it', async () => {
    // 6 consecutive failures open it; each instance sees 2
    for (let round = 0; round < 2; round++) {
      for (const instance of instances) expect((await get(instance, '/breaker')).status).toBe(502);
    }
    await until(() => instances.every((instance) => events(instance, 'breaker_opened', 'DependencyController.shared').length === 1), 'all three breakers to open');
    const before = dependency.hitsOf('/breaker');
    expect(before).toBe(6);
    for (const instance of instances) expect(await get(instance, '/breaker')).toEqual({ status: 503, code: 'circuit_open' });
    expect(dependency.hitsOf('/breaker')).toBe(before);

    // the same traffic against the in-process breaker: no instance reached 6, so calls still go through
    for (let round = 0; round < 2; round++) {
      for (const instance of instances) expect((await get(instance, '/breaker-local')).status).toBe(502);
    }
    for (const instance of instances) expect((await get(instance, '/breaker-local')).status).toBe(502);
    expect(dependency.hitsOf('/breaker-local')).toBe(9);
    expect(instances.every((instance) => events(instance, 'breaker_opened', 'DependencyController.local').length === 0)).toBe(true);
  });

  it('the shared budget caps the retries of all three together at ratio × total calls + floor, not three times that', async () => {
    const callsPerInstance = 30;
    const run = async (path: string) => {
      for (let round = 0; round < callsPerInstance; round++) {
        const answers = await Promise.all(instances.map((instance) => get(instance, path)));
        expect(answers.every((answer) => answer.status === 502)).toBe(true);
      }
      return dependency.hitsOf(path) - callsPerInstance * instances.length;
    };
    const calls = callsPerInstance * instances.length;
    // bound = 0.1 × 90 calls + 0.05/s × 60 s floor = 12 retries in all
    const bound = 0.1 * calls + 3;
    const sharedRetries = await run('/budget');
    // an outage (or an answer slower than maxWait) would hand the decision to in-process budgets
    expect(instances.flatMap((instance) => events(instance, 'shared_state_unavailable'))).toEqual([]);
    expect(sharedRetries).toBeLessThanOrEqual(bound);
    // every call wanted 3 retries, so the budget was the limit: it was used up (calls deposited by
    // the last round may come after the last retry asked for, hence a margin of one)
    expect(sharedRetries).toBeGreaterThanOrEqual(bound - 1);
    expect(instances.flatMap((instance) => events(instance, 'budget_exhausted', 'DependencyController.sharedBudget')).length).toBeGreaterThan(0);

    // in-process budgets under the same load: each instance allows 0.1 × 30 + 3 = 6, 18 in all
    const localRetries = await run('/budget-local');
    expect(localRetries).toBeGreaterThan(bound);
    expect(localRetries).toBeLessThanOrEqual(3 * (0.1 * callsPerInstance + 3));
    expect(instances.every((instance) => events(instance, 'shared_state_unavailable').length === 0)).toBe(true);
  });
});
