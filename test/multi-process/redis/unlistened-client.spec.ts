import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, spawnApp, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const APP = join('build', 'test', 'fixtures', 'redis', 'unlistened-client.app.js');
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, APP), join(root, 'test/fixtures/redis/unlistened-client.app.ts')],
  [join(root, 'dist/redis/redis-connection.js'), join(root, 'lib/redis/redis-connection.ts')],
  [join(root, 'dist/redis/redis-idempotency.store.js'), join(root, 'lib/redis/redis-idempotency.store.ts')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
];

/** POST /orders with `key`; a process that died fails the test with its exit code and stderr. */
async function post(app: SpawnedApp, key: string): Promise<number> {
  try {
    const res = await fetch(`${app.url}/orders`, { method: 'POST', headers: { 'idempotency-key': key } });
    await res.text();
    return res.status;
  } catch (error) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    throw new Error(`${app.name} did not answer (${String(error)}; exit code ${app.child.exitCode}, signal ${app.child.signalCode}); its stderr:\n${app.stderr()}`);
  }
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The app's own client has no 'error' listener (as a snippet that forgot it would): node-redis then
// throws an unhandled 'error' event when the connection drops, and ioredis prints one per reconnect.
// The store and the shared state observe the client's errors themselves, so neither happens.
describe.skipIf(!hasRedis)('a Redis client without an error listener, given to the store and the shared state', () => {
  let redis: ThrowawayRedis;
  const apps: SpawnedApp[] = [];

  beforeAll(async () => {
    requireBuilt(builtFrom);
    redis = await startOwnRedis();
    const prefix = testKeyPrefix('unlistened');
    for (const library of ['node-redis', 'ioredis']) {
      apps.push(await spawnApp(root, APP, library, { REDIS_URL: redis.url, PREFIX: `${prefix}${library}:`, REDIS_CLIENT: library }));
    }
  }, 60_000);
  afterAll(async () => {
    for (const app of apps) app.child.kill('SIGTERM');
    await redis?.stop();
  });

  it('keeps the app up through a Redis kill: 503 while Redis is down, 201 again once it is back', async () => {
    for (const app of apps) expect(await post(app, `${app.name}-before`)).toBe(201);

    await redis.kill();
    for (const app of apps) {
      await eventually(`${app.name} to answer 503 with Redis killed`, async () => (await post(app, `${app.name}-down`)) === 503);
    }
    // reconnect attempts keep failing for a while: the processes must survive them, not only the first error
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    for (const app of apps) {
      expect(app.child.exitCode, `${app.name} exited; its stderr:\n${app.stderr()}`).toBeNull();
      expect(await post(app, `${app.name}-still-down`)).toBe(503);
      const quote = await fetch(`${app.url}/quote`);
      expect(quote.status, `${app.name}: the shared breaker's route keeps answering from in-process state`).toBe(200);
    }

    await redis.start();
    for (const app of apps) {
      await eventually(`${app.name} to answer 201 once Redis is back`, async () => (await post(app, `${app.name}-after`)) === 201);
      expect(app.child.exitCode).toBeNull();
      // ioredis writes "[ioredis] Unhandled error event" for every error nobody listens to
      expect(app.stderr()).not.toMatch(/Unhandled error event|Unhandled 'error' event/);
    }
  }, 60_000);
});
