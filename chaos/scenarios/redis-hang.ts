// Scenario: redis-server hangs under traffic. The server process (our own, by pid) is stopped with
// SIGSTOP for 8 s, then resumed with SIGCONT: connections stay open and nothing answers. Same app
// processes, traffic and checks as redis-outage (chaos/redis/outage.ts): the idempotent route on
// RedisIdempotencyStore (`commandTimeoutMs` 1 s) and the shared breaker and retry budget on
// RedisPolicyState, on one ioredis and one node-redis client.
import type { RedisOutagePlan } from '../redis/outage.js';
import type { Scenario } from '../shared/scenario.js';
import { runOnOwnRedis } from './redis-outage.js';

/**
 * Every claim sent while the server is stopped runs when it resumes (commands cannot be taken back
 * from a socket): its key answers 409 for one lease, then a retry takes it over and runs once. A
 * 3 s lease keeps that within the 5 s recovery limit; the handlers work 300 ms at most.
 */
const PLAN: RedisOutagePlan = { trafficBeforeMs: 3_000, outageMs: 8_000, trafficAfterMs: 4_000, drainLimitMs: 10_000, leaseMs: 3_000, fault: 'freeze' };

export const redisHangScenario: Scenario = {
  id: 'redis-hang',
  title: `redis-server stopped with SIGSTOP for ${PLAN.outageMs / 1000} s under traffic, then resumed (idempotent route on RedisIdempotencyStore, shared breaker and budget on RedisPolicyState, 2 processes)`,
  run: ({ log }) => runOnOwnRedis(PLAN, log),
};
