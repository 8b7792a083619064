import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';
import { describeSampleApp } from './sample-app.scenarios.js';

// REDIS_URL set: the idempotency records go to Redis (RedisIdempotencyStore, lease mode), the
// accounts and reports stay in a real SQLite file.
const dir = mkdtempSync(join(tmpdir(), 'sample-app-redis-'));
let files = 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasRedis)('Redis', () => {
  describeSampleApp('sqlite+redis', async () => ({
    options: { sqliteFile: join(dir, `app-${files++}.sqlite`), redisUrl: redisUrl!, redisKeyPrefix: testKeyPrefix('sample-app') },
  }));
});
