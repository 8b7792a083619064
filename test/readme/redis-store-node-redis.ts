// The README's node-redis variant of the Redis store setup (section "Redis store"): readme.spec.ts
// checks that the README shows the region below verbatim, and the type check compiles it.
// #region readme
import { createClient } from 'redis';
import { RedisIdempotencyStore } from 'nest-resilience/redis';

// disableOfflineQueue: true, for the same reason as enableOfflineQueue: false above
const redis = await createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true }).connect();
export const store = new RedisIdempotencyStore({ client: redis, keyPrefix: 'idempotency:orders:' });
// #endregion
