import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent } from 'nest-resilience';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { platforms } from '../support/app.js';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../support/redis.js';
import { createIdempotencyApp, until, type IdempotencyTestApp } from './support.js';
import type { ThrowawayRedis } from '../../scripts/redis.mjs';

let executions = 0;
const executedKeys = new Set<string>();

@Controller('orders')
class OrdersController {
  @Post()
  @Idempotent()
  create(@Body() body: { item: string }) {
    executions++;
    executedKeys.add(body.item);
    return { item: body.item, execution: executions };
  }
}

// Stops and restarts a redis-server of its own (never the shared one).
describe.skipIf(!hasRedis)('Redis stopped during traffic', () => {
  let redis: ThrowawayRedis;

  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(() => redis?.stop());

  describe.each(platforms)('on %s', (platform) => {
    let harness: IdempotencyTestApp;
    let app: INestApplication;
    let store: RedisIdempotencyStore;
    let closed = false;
    beforeAll(async () => {
      store = new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix(platform) });
      harness = await createIdempotencyApp(platform, { controllers: [OrdersController], idempotency: { store } });
      app = harness.app;
    });
    afterAll(async () => {
      if (!closed) await app?.close();
    });

    const post = (key: string) => request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).send({ item: key });

    it('answers 503 problem+json with Retry-After without running the handler while Redis is down, and recovers without a restart', async () => {
      await post(`${platform}-before`).expect(201);
      const traffic = Array.from({ length: 20 }, (_, i) => `${platform}-traffic-${i}`);
      const inFlight = traffic.map(async (key, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 15));
        return { key, status: (await post(key)).status };
      });
      await new Promise((resolve) => setTimeout(resolve, 120));
      await redis.halt();
      const during = await Promise.all(inFlight);
      expect(during.filter((r) => r.status === 503).length).toBeGreaterThan(0);
      for (const { key, status } of during) {
        expect([201, 503]).toContain(status);
        // A 503 means the request was not executed: the client may safely retry it.
        if (status === 503) expect(executedKeys.has(key)).toBe(false);
      }

      const before = executions;
      for (const key of [`${platform}-down-1`, `${platform}-down-2`, `${platform}-down-3`]) {
        const res = await post(key);
        expect(res.status).toBe(503);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.headers['retry-after']).toBe('1');
        expect(res.body).toMatchObject({ status: 503, code: 'idempotency_store_unavailable' });
      }
      expect(executions).toBe(before);
      expect(harness.named('idempotency_store_error').filter((e) => e.detail === 'claim').length).toBeGreaterThanOrEqual(3);

      await redis.start();
      // The store's connection reconnects by itself; a client retrying as told by Retry-After succeeds.
      await until(async () => (await post(`${platform}-down-1`)).status === 201, 10_000, 'the store to answer again');
      const replay = await post(`${platform}-down-1`).expect(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      await post(`${platform}-after`).expect(201);
      expect(executions).toBe(before + 2);
    });

    it("closes the store's own connection when the app closes", async () => {
      expect(store.client.status).toBe('ready');
      closed = true;
      await app.close();
      expect(store.client.status).toBe('end');
    });
  });
});
