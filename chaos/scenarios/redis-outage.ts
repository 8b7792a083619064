// Scenario 3: redis-server killed (SIGKILL) under traffic for several seconds, then started again
// on the same port, under two app processes (Express on an ioredis client, Fastify on a node-redis
// client) whose `@Idempotent()` route uses `RedisIdempotencyStore` and whose other route has a
// circuit breaker and retry budget shared through `RedisPolicyState`. The server is always our own
// (scripts/redis.mjs: nothing persisted), even with REDIS_URL set, since the scenario kills it.
// The traffic and the checks are in chaos/redis/outage.ts, shared with the fast subset in `npm test`.
import { onInterrupt } from '../../bench/shared/children.js';
import { loadRedisScript } from '../../bench/shared/redis.js';
import { packageRoot } from '../../bench/shared/report.js';
import { runRedisOutage, type RedisOutagePlan } from '../redis/outage.js';
import type { ChaosContext, Scenario, Verdict } from '../shared/scenario.js';

const PLAN: RedisOutagePlan = { trafficBeforeMs: 3_000, outageMs: 5_000, trafficAfterMs: 4_000, drainLimitMs: 10_000, leaseMs: 5_000 };

export const redisOutageScenario: Scenario = {
  id: 'redis-outage',
  title: `redis-server killed with SIGKILL for ${PLAN.outageMs / 1000} s under traffic, then restarted (idempotent route on RedisIdempotencyStore, shared breaker on RedisPolicyState, 2 processes)`,
  run: ({ log }) => runOnOwnRedis(PLAN, log),
};

/** Runs `plan` (chaos/redis/outage.ts) on a redis-server of the scenario's own, stopped afterwards. */
export async function runOnOwnRedis(plan: RedisOutagePlan, log: ChaosContext['log']): Promise<Verdict> {
  // Without redis-server this throws a sentence naming the install command: the scenario fails, as postgres-outage does without PostgreSQL.
  const redis = await (await loadRedisScript()).startRedis();
  const forgetInterrupt = onInterrupt(() => redis.stop());
  try {
    const result = await runRedisOutage({ root: packageRoot(), redis, plan, log });
    return { figure: result.figure, threshold: result.threshold, pass: result.checks.every((check) => check.pass), data: result.data };
  } finally {
    forgetInterrupt();
    await redis.stop();
  }
}
