// maxResponseBytes on every store: a 5 MB response on an @Idempotent() route with the default
// limit (1 MiB) is delivered once, its replay never runs the handler, and what the store keeps
// (memory, a row, a Redis hash) stays small.
import { Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore } from 'nest-resilience';
import { recordIdOf } from 'nest-resilience/core';
import type { RedisIdempotencyStore } from 'nest-resilience/redis';
import { IdempotencyRecord } from 'nest-resilience/typeorm';
import { platforms } from '../../support/app.js';
import { createStore, storeKinds, type StoreUnderTest } from './stores.js';
import { createIdempotencyApp, type IdempotencyTestApp } from './support.js';

const FIVE_MB = 5 * 1024 * 1024;
/** What a record without its body may take at most: key, fingerprint, lease data and a few headers. */
const SMALL_RECORD_BYTES = 2_048;
let executions = 0;

@Controller('exports')
class ExportsController {
  @Post()
  @Idempotent()
  create() {
    executions++;
    return { run: executions, data: 'x'.repeat(FIVE_MB) };
  }
}

/** Bytes the store keeps for `key`, read from the store itself (memory count, row, Redis hash). */
async function keptBytes(store: StoreUnderTest, key: string): Promise<number> {
  if (store.kind === 'memory') return (store.store as InMemoryIdempotencyStore).bytes;
  if (store.kind === 'redis') {
    const redis = store.store as RedisIdempotencyStore;
    const hashKey = redis.keyPrefix + recordIdOf('default', '', key);
    const fields = (await (redis.client as import('ioredis').Redis).hgetall(hashKey)) as Record<string, string>;
    expect(fields.status).toBe('completed');
    return Object.entries(fields).reduce((sum, [name, value]) => sum + name.length + value.length, 0);
  }
  const row = await store.dataSource!.getRepository(IdempotencyRecord).findOneByOrFail({ idempotencyKey: key });
  expect(row.status).toBe('completed');
  expect(row.responseBody).toBeNull();
  return JSON.stringify(row).length;
}

describe.each(storeKinds)('maxResponseBytes (default 1 MiB) on the %s store', (kind) => {
  let store: StoreUnderTest;
  beforeAll(async () => {
    store = await createStore(kind);
  });
  afterAll(() => store?.close());

  describe.each(platforms)('%s', (platform) => {
    let harness: IdempotencyTestApp;
    let app: INestApplication;
    beforeAll(async () => {
      harness = await createIdempotencyApp(platform, { controllers: [ExportsController], idempotency: { store: store.store } });
      app = harness.app;
    });
    afterAll(() => app?.close());

    it('delivers a 5 MB response once; the replay never runs the handler and answers idempotency_response_not_kept; the store keeps no body', async () => {
      const key = `export-${kind}-${platform}-${Date.now()}`;
      const before = executions;
      const first = await request(app.getHttpServer()).post('/exports').set('Idempotency-Key', key).expect(201);
      expect(first.body.data).toHaveLength(FIVE_MB);
      expect(executions).toBe(before + 1);

      for (let retry = 0; retry < 2; retry++) {
        const replay = await request(app.getHttpServer()).post('/exports').set('Idempotency-Key', key).expect(201);
        expect(replay.headers['idempotent-replayed']).toBe('true');
        expect(replay.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(replay.body).toMatchObject({ status: 201, code: 'idempotency_response_not_kept' });
        expect(replay.body.detail).toMatch(/succeeded \(status 201\).*\(5242899 bytes\) was larger than the server keeps for replay/);
      }
      expect(executions).toBe(before + 1);
      expect(await keptBytes(store, key)).toBeLessThan(SMALL_RECORD_BYTES);
      expect(harness.named('idempotency_response_not_kept').at(-1)).toMatchObject({ outcome: 'too_large', code: 'idempotency_response_not_kept', policy: 'POST /exports' });
    });
  });
});
