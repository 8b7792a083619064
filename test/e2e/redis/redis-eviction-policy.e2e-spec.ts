import { Controller, Post, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, ResilienceModule } from 'nest-resilience';
import { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from 'nest-resilience/redis';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';
import { hasRedis, redisUrl, startOwnRedis, testKeyPrefix } from '../../support/redis.js';

let executions = 0;

@Controller('orders')
class OrdersController {
  @Post()
  @Idempotent()
  create() {
    executions++;
    return { id: executions };
  }
}

/** Every warning and error the app logged. */
class CapturingLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(message: unknown): void {
    this.warnings.push(textOf(message));
  }
  warn(message: unknown): void {
    this.warnings.push(textOf(message));
  }
}

/** A log line as text (the library's event logs are structured objects). */
function textOf(message: unknown): string {
  return typeof message === 'string' ? message : JSON.stringify(message);
}

/** Starts a Nest app on `store`; resolves to the app, or rejects with the start-up error. */
async function startApp(store: RedisIdempotencyStore<any>) {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot({ idempotency: { store } })],
    controllers: [OrdersController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return { app, logger };
}

async function startupError(store: RedisIdempotencyStore<any>): Promise<string> {
  try {
    const { app } = await startApp(store);
    await app.close();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the application started');
}

function storeOn(url: string, options: Partial<RedisIdempotencyStoreOptions> = {}) {
  return new RedisIdempotencyStore({ url, keyPrefix: testKeyPrefix('eviction'), commandTimeoutMs: 2_000, ...options });
}

describe.skipIf(!hasRedis)('RedisIdempotencyStore and the server\'s maxmemory-policy (real redis-server)', () => {
  describe('allkeys-lru', () => {
    let redis: ThrowawayRedis;
    beforeAll(async () => {
      redis = await startOwnRedis(['--maxmemory-policy', 'allkeys-lru']);
    });
    afterAll(() => redis?.stop());

    it('refuses to start, naming noeviction and the explicit opt-in', async () => {
      const message = await startupError(storeOn(redis.url));
      expect(message).toMatch(/RedisIdempotencyStore refuses to start: the Redis server says maxmemory-policy is allkeys-lru/);
      expect(message).toMatch(/may evict an in-progress idempotency record and let a duplicate request run the handler a second time/);
      expect(message).toMatch(/CONFIG SET maxmemory-policy noeviction/);
      expect(message).toMatch(/allowEvictingPolicy: true/);
    });

    it('refuses through an app\'s node-redis client as well', async () => {
      const client = await createClient({ url: redis.url, disableOfflineQueue: true }).connect();
      try {
        expect(await startupError(new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('eviction') }))).toMatch(/maxmemory-policy is allkeys-lru/);
      } finally {
        client.destroy();
      }
    });

    it('starts with allowEvictingPolicy: true, and warns', async () => {
      const { app, logger } = await startApp(storeOn(redis.url, { allowEvictingPolicy: true }));
      try {
        expect(logger.warnings.join('\n')).toMatch(/maxmemory-policy is allkeys-lru and allowEvictingPolicy is set/);
        const key = `k-${Date.now()}`;
        const first = await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).expect(201);
        const replay = await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).expect(201);
        expect(replay.body).toEqual(first.body);
        expect(replay.headers['idempotent-replayed']).toBe('true');
      } finally {
        await app.close();
      }
    });

    it('a server that comes up after start-up with allkeys-lru is refused before the first claim: 503, the handler never runs', async () => {
      await redis.halt();
      const store = storeOn(redis.url, { commandTimeoutMs: 300 });
      const { app, logger } = await startApp(store);
      try {
        await redis.start();
        const before = executions;
        let response: request.Response | undefined;
        for (let tries = 0; tries < 50; tries++) {
          response = await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', `late-${tries}`);
          if (response.status === 503 && /allkeys-lru/.test(logger.warnings.join('\n'))) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(response!.status).toBe(503);
        expect(response!.body.code).toBe('idempotency_store_unavailable');
        expect(logger.warnings.join('\n')).toMatch(/refuses to start: the Redis server says maxmemory-policy is allkeys-lru/);
        expect(executions).toBe(before);
      } finally {
        await app.close();
      }
    });
  });

  describe('volatile-lru', () => {
    let redis: ThrowawayRedis;
    beforeAll(async () => {
      redis = await startOwnRedis(['--maxmemory-policy', 'volatile-lru']);
    });
    afterAll(() => redis?.stop());

    it('starts and warns that records carry an expiry, so they are evictable', async () => {
      const { app, logger } = await startApp(storeOn(redis.url));
      try {
        expect(logger.warnings.join('\n')).toMatch(/maxmemory-policy is volatile-lru; every idempotency record carries an expiry.*evicted_keys/);
      } finally {
        await app.close();
      }
    });
  });

  describe('noeviction (the shared test server)', () => {
    it('starts without a warning and serves', async () => {
      const { app, logger } = await startApp(storeOn(redisUrl!));
      try {
        expect(logger.warnings.filter((line) => /maxmemory-policy/.test(line))).toEqual([]);
        await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', `ok-${Date.now()}`).expect(201);
      } finally {
        await app.close();
      }
    });
  });

  describe('a server that refuses CONFIG GET', () => {
    let redis: ThrowawayRedis;
    let admin: Redis;
    beforeAll(async () => {
      redis = await startOwnRedis();
      admin = new Redis(redis.url);
      // a restricted ACL user, as managed services hand out
      await admin.call('ACL', 'SETUSER', 'app', 'on', '>secret', '~*', '&*', '+@all', '-config');
    });
    afterAll(async () => {
      admin?.disconnect();
      await redis?.stop();
    });
    const restrictedUrl = () => redis.url.replace('redis://', 'redis://app:secret@');

    it('refuses to start, saying CONFIG GET was refused and naming maxmemoryPolicy', async () => {
      const message = await startupError(storeOn(restrictedUrl()));
      expect(message).toMatch(/could not read the Redis maxmemory-policy: the server refused CONFIG GET \(NOPERM/);
      expect(message).toMatch(/maxmemoryPolicy: 'noeviction'/);
    });

    it('starts when the policy is declared with maxmemoryPolicy', async () => {
      const { app } = await startApp(storeOn(restrictedUrl(), { maxmemoryPolicy: 'noeviction' }));
      try {
        await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', `declared-${Date.now()}`).expect(201);
      } finally {
        await app.close();
      }
    });

    it('refuses a declared allkeys-* policy like a read one', async () => {
      expect(await startupError(storeOn(restrictedUrl(), { maxmemoryPolicy: 'allkeys-lfu' }))).toMatch(/the maxmemoryPolicy option says maxmemory-policy is allkeys-lfu/);
    });

    it('refuses an unknown declared policy at construction', () => {
      expect(() => storeOn(restrictedUrl(), { maxmemoryPolicy: 'lru' as never })).toThrow(/maxmemoryPolicy must be the server's maxmemory-policy, one of noeviction/);
    });
  });

  describe('CONFIG renamed away (rename-command)', () => {
    let redis: ThrowawayRedis;
    beforeAll(async () => {
      redis = await startOwnRedis(['--rename-command', 'CONFIG', '']);
    });
    afterAll(() => redis?.stop());

    it('refuses to start with the unknown-command answer named', async () => {
      expect(await startupError(storeOn(redis.url))).toMatch(/refused CONFIG GET \(ERR unknown command/);
    });
  });
});
