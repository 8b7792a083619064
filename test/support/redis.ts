import { randomBytes } from 'node:crypto';
import { startRedis, type ThrowawayRedis } from '../../scripts/redis.mjs';

/** The server `npm test` started (or the one REDIS_URL names); undefined when there is none. */
export const redisUrl = process.env.REDIS_URL;

/** Whether Redis tests can run; they are skipped (loudly, by `npm test`) otherwise. */
export const hasRedis = Boolean(redisUrl);

/**
 * A key prefix of the test's own (`test:<random>:`), so test files sharing the one server never
 * see one another's keys.
 */
export function testKeyPrefix(name = 'test'): string {
  return `${name}:${randomBytes(6).toString('hex')}:`;
}

/**
 * A redis-server owned by one test file, for tests that stop or kill the server (they must never
 * stop the shared one) or need server options of their own (`args`, e.g. `['--maxmemory-policy', 'allkeys-lru']`).
 * Uses the binary `npm test` found (REDIS_SERVER), else looks it up.
 */
export function startOwnRedis(args: readonly string[] = []): Promise<ThrowawayRedis> {
  return startRedis({ ...(process.env.REDIS_SERVER ? { bin: process.env.REDIS_SERVER } : {}), args });
}
