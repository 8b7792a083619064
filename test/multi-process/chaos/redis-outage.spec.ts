// The fast subset of the chaos suite's redis-outage scenario: the same app processes, traffic and
// checks (chaos/redis/outage.ts), with a 2 s outage and shorter phases. It kills and restarts a
// redis-server of its own (never the shared one).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_OUTAGE_APP, runRedisOutage, type RedisOutagePlan } from '../../../chaos/redis/outage.js';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';
import { requireBuilt } from '../../fixtures/spawn-app.js';
import { hasRedis, startOwnRedis } from '../../support/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, REDIS_OUTAGE_APP), join(root, 'chaos/redis/redis-outage.app.ts')],
  [join(root, 'dist/redis/redis-idempotency.store.js'), join(root, 'lib/redis/redis-idempotency.store.ts')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
  [join(root, 'dist/redis/redis-connection.js'), join(root, 'lib/redis/redis-connection.ts')],
  [join(root, 'dist/core/shared-policy-state.js'), join(root, 'lib/core/shared-policy-state.ts')],
  [join(root, 'dist/core/idempotency/idempotency-core.js'), join(root, 'lib/core/idempotency/idempotency-core.ts')],
];
/** The drain outlasts the lease, for keys held by a claim the client resent after reconnecting. */
const PLAN: RedisOutagePlan = { trafficBeforeMs: 1_000, outageMs: 2_000, trafficAfterMs: 1_500, drainLimitMs: 4_000, leaseMs: 2_000 };

describe.skipIf(!hasRedis)('Redis killed under traffic and restarted (2 app processes: ioredis and node-redis)', () => {
  let redis: ThrowawayRedis;

  beforeAll(async () => {
    requireBuilt(builtFrom);
    redis = await startOwnRedis();
  });
  afterAll(() => redis?.stop());

  it('503 + Retry-After without running handlers while down, bounded waits, the shared breaker answering, recovery without restart, each key run once', async () => {
    const lines: string[] = [];
    const result = await runRedisOutage({ root, redis, plan: PLAN, log: (line) => lines.push(line) });
    const failed = result.checks.filter((check) => !check.pass).map((check) => `${check.name}: ${check.detail}`);
    expect(failed, `${result.figure}\n${lines.join('\n')}`).toEqual([]);
    expect(result.checks.length).toBeGreaterThanOrEqual(9);
    // ~12 s on a quiet machine (two app processes started, three phases, the drain); 24–30 s on a
    // runner whose cores are busy with other work, where the checks' bounds still hold
  }, 90_000);
});
