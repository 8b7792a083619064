import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { Controller, Get, Inject, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { IdempotencyStore, ResilienceModule } from 'nest-resilience';
import { IdempotencyStoreHealthIndicator, RedisHealthIndicator, ResilienceHealthModule } from 'nest-resilience/health';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import { until } from '../idempotency/support.js';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisHealthIndicator,
    private readonly store: IdempotencyStoreHealthIndicator,
    @Inject(IdempotencyStore) private readonly redisStore: RedisIdempotencyStore,
  ) {}

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.redis.isHealthy('redis', { client: this.redisStore.client, timeout: 500 }),
      () => this.store.isHealthy('idempotency_store', { timeout: 500 }),
    ]);
  }
}

// Stops and restarts a redis-server of its own (never the shared one).
describe.skipIf(!hasRedis)('RedisHealthIndicator and the store indicator on the Redis store', () => {
  let redis: ThrowawayRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(() => redis?.stop());

  describe.each(platforms)('on %s', (platform) => {
    let app: INestApplication;
    beforeAll(async () => {
      const store = new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix('health') });
      app = await createApp(platform, {
        imports: [ResilienceModule.forRoot({ idempotency: { store } }), ResilienceHealthModule],
        controllers: [HealthController],
      });
    });
    afterAll(async () => {
      await app?.close();
    });

    const ready = () => request(app.getHttpServer()).get('/health/ready');

    it('is up with latencyMs while Redis answers, down with a sentence while it is stopped, and up again once it is back', async () => {
      await until(async () => (await ready()).status === 200, 5_000, 'the first connection');
      const up = await ready().expect(200);
      expect(up.body.info.redis).toEqual({ status: 'up', latencyMs: expect.any(Number) });
      expect(up.body.info.idempotency_store).toEqual({ status: 'up', latencyMs: expect.any(Number) });

      await redis.halt();
      try {
        const down = await ready().expect(503);
        expect(down.body.error.redis).toMatchObject({ status: 'down', latencyMs: expect.any(Number), connection: expect.stringMatching(/reconnecting|connecting|close/) });
        expect(down.body.error.redis.message).toMatch(/^Redis did not answer PING: .+\.$/);
        expect(down.body.error.idempotency_store).toMatchObject({ status: 'down' });
        expect(down.body.error.idempotency_store.message).toMatch(/^The idempotency store did not answer its ping: /);
      } finally {
        await redis.start();
      }
      await until(async () => (await ready()).status === 200, 10_000, 'Redis to be up again');
    });
  });

  it('is down when PING does not answer within the timeout (a stalled server)', async () => {
    const store = new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix('health') });
    const app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ idempotency: { store } }), ResilienceHealthModule],
      controllers: [HealthController],
    });
    const pauser = new Redis(redis.url);
    try {
      await until(async () => (await request(app.getHttpServer()).get('/health/ready')).status === 200, 5_000, 'the first connection');
      await pauser.client('PAUSE', 800);
      const indicator = app.get(RedisHealthIndicator);
      const result = await indicator.isHealthy('redis', { client: store.client, timeout: 200 });
      expect(result.redis).toMatchObject({ status: 'down', connection: 'ready' });
      expect(result.redis.message).toMatch(/timed out/);
    } finally {
      await pauser.client('UNPAUSE').catch(() => undefined);
      pauser.disconnect();
      await app.close();
    }
  });

  it('checks a node-redis client the same way: up, down while Redis is stopped, up again', async () => {
    const client = createClient({ url: redis.url, disableOfflineQueue: true });
    client.on('error', () => undefined);
    await client.connect();
    const store = new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('health') });
    const app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ idempotency: { store } }), ResilienceHealthModule],
      controllers: [HealthController],
    });
    const ready = () => request(app.getHttpServer()).get('/health/ready');
    try {
      const up = await ready().expect(200);
      expect(up.body.info.redis).toEqual({ status: 'up', latencyMs: expect.any(Number) });
      await redis.halt();
      try {
        await until(async () => !client.isReady, 5_000, 'the client to notice');
        const down = await ready().expect(503);
        expect(down.body.error.redis).toMatchObject({ status: 'down', latencyMs: expect.any(Number) });
        expect(down.body.error.redis.message).toMatch(/^Redis did not answer PING: .+\.$/);
        expect(down.body.error.idempotency_store).toMatchObject({ status: 'down' });
      } finally {
        await redis.start();
      }
      await until(async () => (await ready()).status === 200, 10_000, 'Redis to be up again');
    } finally {
      await app.close();
      client.destroy();
    }
  });
});
