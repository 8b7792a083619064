import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CountingDependency } from '../../fixtures/counting-dependency.js';
import { requireBuilt, spawnApp, stopAll, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { hasRedis, redisUrl, startOwnRedis, testKeyPrefix } from '../../support/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const APP = join('build', 'test', 'fixtures', 'shared-state', 'http-client.app.js');
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, APP), join(root, 'test/fixtures/shared-state/http-client.app.ts')],
  [join(root, 'dist/http-client/http-client.js'), join(root, 'lib/http-client/http-client.ts')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
  [join(root, 'dist/core/circuit-breaker.policy.js'), join(root, 'lib/core/circuit-breaker.policy.ts')],
  [join(root, 'dist/core/shared-policy-state.js'), join(root, 'lib/core/shared-policy-state.ts')],
];

/** The fixture's report of one client call (see http-client.app.ts). */
interface CallReport {
  readonly outcome: string;
  readonly status?: number;
  readonly attempts: number;
  readonly durationMs: number;
}

/** A dependency that answers every request with 503 and a JSON body that is not a problem, counted per path. */
const failingDependency = () => new CountingDependency({ contentType: 'application/json', body: '{"error":"down"}' }).start();

async function call(instance: SpawnedApp, client: string, path: string, origin?: 'second'): Promise<CallReport> {
  const res = await fetch(`${instance.url}/call/${client}/${path}${origin === undefined ? '' : `?origin=${origin}`}`);
  expect(res.status).toBe(200);
  return (await res.json()) as CallReport;
}

const events = (instance: SpawnedApp, name: string, policy?: string) =>
  instance.lines
    .filter((text) => text.startsWith('EVENT '))
    .map((text) => JSON.parse(text.slice(6)) as { event: string; policy: string })
    .filter((event) => event.event === name && (policy === undefined || event.policy === policy));

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(!hasRedis)('HttpClient with shared state: two app instances (separate Node processes) sharing one Redis', () => {
  let dependency: CountingDependency;
  let secondOrigin: CountingDependency;
  let a: SpawnedApp;
  let b: SpawnedApp;

  beforeAll(async () => {
    requireBuilt(builtFrom);
    dependency = await failingDependency();
    secondOrigin = await failingDependency();
    const env = { REDIS_URL: redisUrl!, DOWNSTREAM: dependency.url, SECOND_ORIGIN: secondOrigin.url, PREFIX: testKeyPrefix('http-shared') };
    [a, b] = await Promise.all(['a', 'b'].map((name) => spawnApp(root, APP, name, env)));
  }, 60_000);

  afterAll(async () => {
    await stopAll([a, b].filter(Boolean));
    await dependency?.close();
    await secondOrigin?.close();
  });

  it('failures seen only through A open the breaker on B, which never called the dependency', async () => {
    const policy = `http:sharedBreaker@${dependency.url}`;
    for (let n = 0; n < 6; n++) expect(await call(a, 'sharedBreaker', 'only-a')).toMatchObject({ outcome: 'http_status', status: 503, attempts: 1 });
    await until(() => events(b, 'breaker_opened', policy).length === 1, "B's breaker to open");
    expect(await call(b, 'sharedBreaker', 'only-a')).toMatchObject({ outcome: 'circuit_open', attempts: 0 });
    expect(await call(a, 'sharedBreaker', 'only-a')).toMatchObject({ outcome: 'circuit_open', attempts: 0 });
    expect(dependency.hitsOf('/only-a')).toBe(6);
  });

  it('the breaker of another origin is its own; it opens on both once their failures together reach the threshold, each alone under it', async () => {
    // the client's breaker of its base URL's origin is open (previous test), yet these calls are sent
    const policy = `http:sharedBreaker@${secondOrigin.url}`;
    for (let round = 0; round < 3; round++) {
      for (const instance of [a, b]) expect(await call(instance, 'sharedBreaker', 'across', 'second')).toMatchObject({ outcome: 'http_status', status: 503 });
    }
    await until(() => [a, b].every((instance) => events(instance, 'breaker_opened', policy).length === 1), 'both breakers of the second origin to open');
    for (const instance of [a, b]) expect(await call(instance, 'sharedBreaker', 'across', 'second')).toMatchObject({ outcome: 'circuit_open', attempts: 0 });
    expect(secondOrigin.hitsOf('/across')).toBe(6);

    // the same traffic through the client with an in-process breaker: neither instance reached 6
    for (let round = 0; round < 4; round++) {
      for (const instance of [a, b]) expect((await call(instance, 'localBreaker', 'across-local')).outcome).toBe('http_status');
    }
    expect(dependency.hitsOf('/across-local')).toBe(8);
    expect([a, b].every((instance) => events(instance, 'breaker_opened', `http:localBreaker@${dependency.url}`).length === 0)).toBe(true);
  });

  it('the shared budget caps the retries of both together at ratio × total calls + floor, not twice that', async () => {
    const callsPerInstance = 40;
    const run = async (client: string, path: string) => {
      for (let round = 0; round < callsPerInstance; round++) {
        const reports = await Promise.all([a, b].map((instance) => call(instance, client, path)));
        expect(reports.every((report) => report.outcome === 'http_status' && report.status === 503)).toBe(true);
      }
      return dependency.hitsOf(`/${path}`) - 2 * callsPerInstance;
    };
    // bound = 0.1 × 80 calls + 0.05/s × 60 s floor = 11 retries in all
    const bound = 0.1 * 2 * callsPerInstance + 3;
    const sharedRetries = await run('sharedBudget', 'budget');
    // an outage (or an answer slower than maxWait) would hand the decision to in-process budgets
    expect([a, b].flatMap((instance) => events(instance, 'shared_state_unavailable'))).toEqual([]);
    expect(sharedRetries).toBeLessThanOrEqual(bound);
    // every call wanted 3 retries, so the budget was the limit and was used up (calls deposited by
    // the last round may come after the last retry asked for, hence a margin of one)
    expect(sharedRetries).toBeGreaterThanOrEqual(bound - 1);
    expect([a, b].flatMap((instance) => events(instance, 'budget_exhausted', `http:sharedBudget@${dependency.url}`)).length).toBeGreaterThan(0);

    // in-process budgets under the same load: each instance allows 0.1 × 40 + 3 = 7, 14 in all
    const localRetries = await run('localBudget', 'budget-local');
    expect(localRetries).toBeGreaterThan(bound);
    expect(localRetries).toBeLessThanOrEqual(2 * (0.1 * callsPerInstance + 3));
  });
});

describe.skipIf(!hasRedis)('HttpClient with shared state when Redis hangs or stops (two instances, a Redis of this file)', () => {
  /** `maxWait` of the instances: RedisPolicyState's documented default. */
  const MAX_WAIT = 50;
  let server: Awaited<ReturnType<typeof startOwnRedis>>;
  let dependency: CountingDependency;
  let secondOrigin: CountingDependency;
  let a: SpawnedApp;
  let b: SpawnedApp;

  beforeAll(async () => {
    requireBuilt(builtFrom);
    server = await startOwnRedis();
    dependency = await failingDependency();
    secondOrigin = await failingDependency();
  });

  beforeEach(async () => {
    await server.start();
    const env = {
      REDIS_URL: server.url,
      DOWNSTREAM: dependency.url,
      SECOND_ORIGIN: secondOrigin.url,
      PREFIX: testKeyPrefix('http-outage'),
      MAX_WAIT: String(MAX_WAIT),
    };
    [a, b] = await Promise.all(['a', 'b'].map((name) => spawnApp(root, APP, name, env)));
  }, 60_000);

  afterEach(async () => {
    await stopAll([a, b]);
  });

  afterAll(async () => {
    await server?.stop();
    await dependency?.close();
    await secondOrigin?.close();
  });

  it('Redis hangs: each retry waits at most maxWait for its shared permit, then the in-process budget decides; no call hangs', async () => {
    const pauseMs = 2_000;
    const pauser = new Redis(server.url);
    try {
      await pauser.call('CLIENT', 'PAUSE', String(pauseMs), 'ALL');
      const paused = Date.now();
      // three permits unanswered for maxWait each count as an outage; the in-process floor (3) grants them
      const first = await Promise.all([a, b].map((instance) => call(instance, 'sharedBudget', 'hang')));
      for (const report of first) {
        expect(report).toMatchObject({ outcome: 'http_status', status: 503, attempts: 4 });
        // Redis was asked (a permit waited maxWait) and the wait was bounded (far less than the pause)
        expect(report.durationMs).toBeGreaterThanOrEqual(MAX_WAIT);
        expect(report.durationMs).toBeLessThan(3 * MAX_WAIT + 1_000);
      }
      await until(() => [a, b].every((instance) => events(instance, 'shared_state_unavailable').length === 1), 'both instances to fall back');
      // now the in-process budget answers without a round trip: its floor is used up, so no retry
      const second = await Promise.all([a, b].map((instance) => call(instance, 'sharedBudget', 'hang')));
      for (const report of second) expect(report).toMatchObject({ outcome: 'http_status', attempts: 1 });
      expect(Date.now() - paused).toBeLessThan(pauseMs); // all of it happened while Redis did not answer
    } finally {
      await pauser.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      pauser.disconnect();
    }
  });

  it('Redis stops: each instance judges the client breaker alone; B still calls after A opened its own', async () => {
    await server.halt();
    const started = Date.now();
    const failure = { outcome: 'http_status', status: 503 };
    // A's first batch of outcomes fails at once (no offline queue): from then on A judges alone,
    // with its first failure counted, and opens at its own 6th
    expect(await call(a, 'sharedBreaker', 'stopped')).toMatchObject(failure);
    await until(() => events(a, 'shared_state_unavailable').length === 1, 'A to fall back');
    for (let n = 1; n < 6; n++) {
      const report = await call(a, 'sharedBreaker', 'stopped');
      expect(report).toMatchObject(failure);
      expect(report.durationMs).toBeLessThan(1_000);
    }
    expect(events(a, 'breaker_opened')).toHaveLength(1);
    expect(await call(a, 'sharedBreaker', 'stopped')).toMatchObject({ outcome: 'circuit_open', attempts: 0 });
    // with Redis up, A's six failures would have opened B's breaker too; B's own window is empty
    expect(await call(b, 'sharedBreaker', 'stopped')).toMatchObject(failure);
    expect(dependency.hitsOf('/stopped')).toBe(7);
    expect(events(b, 'breaker_opened')).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
