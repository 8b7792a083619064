import 'reflect-metadata';
import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import { Idempotent, IdempotencyTransaction, ResilienceModule } from 'nest-resilience';
import request from 'supertest';
import type { EntityManager } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../support/app.js';
import { hasPostgres } from '../support/postgres.js';
import { createStore, TestReport, type StoreUnderTest } from '../idempotency/stores.js';
import { expectProblem, retryAfterSeconds } from './support.js';

interface CreateBody {
  readonly run: string;
  readonly title: string;
}

/** Handler runs per run id; the first run of each kills its own transaction's connection. */
const runs = new Map<string, number>();
/** Backend pids the handler ran on, per run id. */
const backends = new Map<string, number[]>();

@Controller('reports')
class ReportsController {
  @Post()
  @Idempotent({ transactional: true })
  async create(@Body() body: CreateBody, @IdempotencyTransaction() manager: EntityManager) {
    const run = (runs.get(body.run) ?? 0) + 1;
    runs.set(body.run, run);
    const [{ pid }] = (await manager.query('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
    backends.set(body.run, [...(backends.get(body.run) ?? []), pid]);
    const saved = await manager.save(TestReport, manager.create(TestReport, { requestKey: body.run, title: body.title }));
    // The connection dies mid-transaction: the error is not caught and the write is lost with it.
    if (run === 1) await manager.query('SELECT pg_terminate_backend(pg_backend_pid())');
    return { id: saved.id, title: body.title, run };
  }
}

describe.skipIf(!hasPostgres)('error defaults when the transactional idempotency store loses its connection', () => {
  let store: StoreUnderTest;
  beforeAll(async () => {
    // One connection: the retry can only succeed if the pool discarded the terminated one.
    store = await createStore('postgres', { poolSize: 1 });
  });
  afterAll(async () => {
    await store?.close();
  });
  const rows = (run: string) => store.dataSource!.getRepository(TestReport).countBy({ requestKey: run });

  describe.each(platforms)('on %s', (platform) => {
    let app: INestApplication;
    beforeAll(async () => {
      app = await createApp(platform, {
        imports: [ResilienceModule.forRoot({ idempotency: { store: store.store } })],
        controllers: [ReportsController],
      });
    });
    afterAll(async () => {
      await app?.close();
    });
    const post = (key: string, body: CreateBody) => request(app.getHttpServer()).post('/reports').set('Idempotency-Key', key).send(body);

    it('answers 503 idempotency_store_unavailable + Retry-After when the transaction’s connection dies, then runs the retry once', async () => {
      const run = `${platform}-terminated`;
      const lost = await post(run, { run, title: 'Q3' });
      expectProblem(lost, 503, 'idempotency_store_unavailable');
      retryAfterSeconds(lost);
      expect(runs.get(run)).toBe(1);
      expect(await rows(run)).toBe(0);

      const retried = await post(run, { run, title: 'Q3' });
      expect({ status: retried.status, body: retried.body }).toMatchObject({ status: 201, body: { title: 'Q3', run: 2 } });
      expect(runs.get(run)).toBe(2);
      expect(await rows(run)).toBe(1);
      // The retry ran on a new connection: the terminated one left the pool.
      const [first, second] = backends.get(run)!;
      expect(second).not.toBe(first);

      const replay = await post(run, { run, title: 'Q3' }).expect(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toEqual(retried.body);
      expect(runs.get(run)).toBe(2);
      expect(await rows(run)).toBe(1);
    });
  });
});
