import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { platforms } from '../support/app.js';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../support/postgres.js';
import { createIdempotencyApp, until, type IdempotencyTestApp } from './support.js';
import type { ThrowawayPostgres } from '../../scripts/postgres.mjs';


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

// Stops and restarts a PostgreSQL server of its own (never the shared one).
describe.skipIf(!hasPostgres)('PostgreSQL stopped during traffic', () => {
  let own: OwnPostgres;
  let postgres: ThrowawayPostgres;
  let dataSource: DataSource;

  beforeAll(async () => {
    own = await startOwnPostgres([IdempotencyRecord], { poolSize: 5, connectTimeoutMs: 500, queryTimeoutMs: 2000 });
    ({ server: postgres, dataSource } = own);
  });
  afterAll(() => own?.close());

  describe.each(platforms)('on %s', (platform) => {
  let harness: IdempotencyTestApp;
  let app: INestApplication;
  beforeAll(async () => {
    harness = await createIdempotencyApp(platform, { controllers: [OrdersController], idempotency: { store: new TypeOrmIdempotencyStore(dataSource) } });
    app = harness.app;
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (key: string) => request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).send({ item: key });

  it('answers 503 without running the handler while the database is down, and recovers without a restart', async () => {
    await post(`${platform}-before`).expect(201);
    const traffic = Array.from({ length: 20 }, (_, i) => `${platform}-traffic-${i}`);
    const inFlight = traffic.map(async (key, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 15));
      return { key, status: (await post(key)).status };
    });
    await new Promise((resolve) => setTimeout(resolve, 120));
    postgres.halt();
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
      expect(res.body.code).toBe('idempotency_store_unavailable');
    }
    expect(executions).toBe(before);
    expect(harness.named('idempotency_store_error').filter((e) => e.detail === 'claim').length).toBeGreaterThanOrEqual(3);

    postgres.start();
    // The pool drops its dead connections on first use; a client retrying as told by Retry-After succeeds.
    await until(async () => (await post(`${platform}-down-1`)).status === 201, 10_000, 'the store to answer again');
    const replay = await post(`${platform}-down-1`).expect(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    await post(`${platform}-after`).expect(201);
    expect(executions).toBe(before + 2);
  });
  });
});
