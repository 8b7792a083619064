import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import { describeStoreOutage } from './store-outage.js';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';

// Stops and restarts a redis-server of its own (never the shared one).
describe.skipIf(!hasRedis)('Redis stopped during traffic', () => {
  let redis: ThrowawayRedis;

  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(() => redis?.stop());

  describeStoreOutage(
    () => ({
      halt: () => redis.halt(),
      start: () => redis.start(),
      // The store opens its own connection from the url (no offline queue, reconnects by itself).
      storeFor: (platform) => new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix(platform) }),
    }),
    ({ store, closeApp }) => {
      it("closes the store's own connection when the app closes", async () => {
        const { client } = store() as RedisIdempotencyStore;
        expect(client.status).toBe('ready');
        await closeApp();
        expect(client.status).toBe('end');
      });
    },
  );
});

describe.skipIf(!hasRedis)('Redis stopped during traffic, through an app\'s node-redis client', () => {
  let redis: ThrowawayRedis;
  const clients: Array<ReturnType<typeof createClient>> = [];

  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(async () => {
    for (const client of clients) client.destroy();
    await redis?.stop();
  });

  describeStoreOutage(() => ({
    halt: () => redis.halt(),
    start: () => redis.start(),
    // connected by its owner, as node-redis wants; the store waits for its first 'ready'
    storeFor: (platform) => {
      const client = createClient({ url: redis.url, disableOfflineQueue: true });
      client.on('error', () => undefined);
      client.connect().catch(() => undefined);
      clients.push(client);
      return new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix(platform) });
    },
  }));
});
