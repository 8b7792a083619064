import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';
import { describeIdempotencyStoreContract } from './store-contract.js';
import { sleep } from './support.js';

describeIdempotencyStoreContract(
  'RedisIdempotencyStore (ioredis client of the app)',
  async () => {
    const client = new Redis(redisUrl!, { enableOfflineQueue: false });
    const store = new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('contract') });
    // The Redis server's clock decides, and only real time moves it.
    return { store, shortMs: 200, pass: sleep, close: async () => void (await client.quit()) };
  },
  { skip: !hasRedis, transactional: false, expiresByItself: true },
);

describeIdempotencyStoreContract(
  'RedisIdempotencyStore (node-redis client of the app)',
  async () => {
    const client = await createClient({ url: redisUrl!, disableOfflineQueue: true }).connect();
    const store = new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('contract-node-redis') });
    return { store, shortMs: 200, pass: sleep, close: () => client.close() };
  },
  { skip: !hasRedis, transactional: false, expiresByItself: true },
);

describeIdempotencyStoreContract(
  'RedisIdempotencyStore (own connection from url)',
  async () => {
    const store = new RedisIdempotencyStore({ url: redisUrl!, keyPrefix: testKeyPrefix('contract-url') });
    store.onModuleInit();
    return { store, shortMs: 200, pass: sleep, close: () => store.onApplicationShutdown() };
  },
  { skip: !hasRedis, transactional: false, expiresByItself: true },
);
