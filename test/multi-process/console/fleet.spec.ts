import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingDependency } from '../../fixtures/counting-dependency.js';
import { requireBuilt, spawnApp, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const APP = join('build', 'test', 'fixtures', 'console', 'fleet.app.js');
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, APP), join(root, 'test/fixtures/console/fleet.app.ts')],
  [join(root, 'dist/console/resilience-console.service.js'), join(root, 'lib/console/resilience-console.service.ts')],
  [join(root, 'dist/console/assets/console.js'), join(root, 'lib/console/assets/console.js')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
  [join(root, 'dist/redis/redis-policy-state.scripts.js'), join(root, 'lib/redis/redis-policy-state.scripts.ts')],
  [join(root, 'dist/core/shared-policy-state.js'), join(root, 'lib/core/shared-policy-state.ts')],
];
const TOKEN = 'fleet-operator-token';

/** The console state of `instance` (JSON endpoint, with the operator's token). */
async function consoleState(instance: SpawnedApp): Promise<any> {
  const response = await fetch(`${instance.url}/resilience/api/state`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(response.status).toBe(200);
  return response.json();
}

/** Polls `read` until `accept` holds for its value; returns that value. */
async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}: last ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Two app processes on one redis-server: the console of each shows the fleet's shared breaker and budget.
describe.skipIf(!hasRedis)('the console fleet view: two processes sharing a breaker and a budget on Redis', () => {
  const dependency = new CountingDependency();
  let a: SpawnedApp;
  let b: SpawnedApp;

  beforeAll(async () => {
    requireBuilt(builtFrom);
    await dependency.start();
    const env = { REDIS_URL: redisUrl!, DOWNSTREAM: dependency.url, PREFIX: testKeyPrefix('console-fleet'), CONSOLE_TOKEN: TOKEN };
    [a, b] = await Promise.all([spawnApp(root, APP, 'a', env), spawnApp(root, APP, 'b', env)]);
  }, 60_000);

  afterAll(async () => {
    for (const instance of [a, b]) instance?.child.kill('SIGTERM');
    await dependency.close();
  });

  it("shows a breaker opened by A's failures as open in B's console, from the fleet's state, before B called the dependency", async () => {
    for (let call = 0; call < 3; call++) expect((await fetch(`${a.url}/orders`)).status).toBe(502);
    const state = await eventually(
      () => consoleState(b),
      (s) => s.breakers.find((breaker: any) => breaker.key === 'orders')?.state === 'open',
      "B's breaker to follow the fleet",
    );
    const orders = state.breakers.find((breaker: any) => breaker.key === 'orders');
    expect(orders).toMatchObject({ shared: true, bufferedCalls: 0, fleet: { available: true, state: 'open', reason: 'consecutive', opens: 1 } });
    expect(orders.fleet.remainingMs).toBeGreaterThan(50_000);
    expect(state.sharedState).toEqual({ configured: true, available: true });
    expect(dependency.hitsOf('/orders', 'b')).toBe(0);
    expect((await fetch(`${b.url}/orders`)).status).toBe(503);
  });

  it("counts the budget's calls and retries of both instances in the fleet view, and each instance's own beside it", async () => {
    for (let call = 0; call < 4; call++) expect((await fetch(`${a.url}/stock`)).status).toBe(502);
    for (let call = 0; call < 2; call++) expect((await fetch(`${b.url}/stock`)).status).toBe(502);
    const retriesA = dependency.hitsOf('/stock', 'a') - 4;
    const retriesB = dependency.hitsOf('/stock', 'b') - 2;
    expect(retriesA + retriesB).toBeGreaterThan(0);
    // calls are deposited in batches: the fleet view has them once the last batch landed
    const state = await eventually(
      () => consoleState(b),
      (s) => s.budgets.find((budget: any) => budget.key === 'OrdersController.stock')?.fleet?.calls === 6,
      'the fleet budget to count both instances',
    );
    const stock = state.budgets.find((budget: any) => budget.key === 'OrdersController.stock');
    // this instance's own window: its calls (its retries are granted by the fleet's window while Redis answers)
    expect(stock).toMatchObject({ shared: true, calls: 2 });
    expect(stock.fleet).toMatchObject({ available: true, calls: 6, retries: retriesA + retriesB });
    // 0.5 × 6 calls + 0.05/s × 60 s = 6 retries allowed in all
    expect(stock.fleet.allowance).toBeCloseTo(6, 6);
    expect(stock.fleet.remaining).toBe(Math.max(0, 6 - retriesA - retriesB));
  });

  it("resetting the shared breaker in B's console closes it in A; the action is listed by B, where it was taken", async () => {
    dependency.failing = false;
    const reset = await fetch(`${b.url}/resilience/api/breakers/reset`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'orders' }),
    });
    expect(reset.status).toBe(200);
    expect(await reset.json()).toMatchObject({ actor: 'operator-b', action: 'reset', target: 'orders' });
    const state = await eventually(
      () => consoleState(a),
      (s) => s.breakers.find((breaker: any) => breaker.key === 'orders')?.state === 'closed',
      "A's breaker to close",
    );
    expect(state.breakers.find((breaker: any) => breaker.key === 'orders').fleet).toMatchObject({ available: true, state: 'closed' });
    expect((await fetch(`${a.url}/orders`)).status).toBe(200);
    const auditA = await (await fetch(`${a.url}/resilience/api/audit`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(auditA).toEqual([]);
  });
});
