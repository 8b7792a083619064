import 'reflect-metadata';
import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import { ResilienceEvents, type ResilienceEvent } from 'nest-resilience';
import { Idempotent, IdempotencyTransaction, ResilienceModule } from 'nest-resilience';
import pg from 'pg';
import request from 'supertest';
import type { EntityManager } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { hasPostgres } from '../../support/postgres.js';
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

/** Released by the test: holds a transactional run, and with it a pooled connection. */
let holding: Promise<void> = Promise.resolve();

@Controller('busy')
class BusyController {
  @Post('tx')
  @Idempotent({ transactional: true })
  async hold(@Body() body: { title: string }, @IdempotencyTransaction() manager: EntityManager) {
    await manager.query('SELECT 1');
    await holding;
    return { title: body.title };
  }

  @Post('contended')
  @Idempotent({ transactional: true })
  async contended(@Body() body: { title: string }, @IdempotencyTransaction() manager: EntityManager) {
    await manager.query(`UPDATE idem_test_reports SET title = $1 WHERE "requestKey" = 'contended'`, [body.title]);
    return { title: body.title };
  }

  @Post('lease')
  @Idempotent()
  lease(@Body() body: { title: string }) {
    return { title: body.title };
  }
}

describe.skipIf(!hasPostgres)('store failures answer their own 503 code, and the log names the cause', () => {
  let store: StoreUnderTest;
  let app: INestApplication;
  const storeErrors: ResilienceEvent[] = [];
  beforeAll(async () => {
    // One pooled connection, a short checkout wait and a short lock timeout: each failure is quick to provoke.
    store = await createStore('postgres', { poolSize: 1, connectTimeoutMS: 300, lockTimeout: 200 });
    app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ idempotency: { store: store.store } })],
      controllers: [BusyController],
    });
    app.get(ResilienceEvents).subscribe((event) => {
      if (event.event === 'idempotency_store_error') storeErrors.push(event);
    });
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });
  const post = (path: string, key: string) => request(app.getHttpServer()).post(path).set('Idempotency-Key', key).send({ title: key });

  it('pool checkout timeout → 503 idempotency_store_pool_exhausted; the key stays free', async () => {
    let release!: () => void;
    holding = new Promise((resolve) => (release = resolve));
    const held = post('/busy/tx', 'holder').then((response) => response);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const starved = await post('/busy/lease', 'starved');
    expectProblem(starved, 503, 'idempotency_store_pool_exhausted');
    retryAfterSeconds(starved);
    expect(starved.body.detail).not.toMatch(/timeout exceeded/);
    expect(storeErrors.at(-1)).toMatchObject({ detail: 'claim', code: 'idempotency_store_pool_exhausted', outcome: 'pool_exhausted', cause: 'Error: timeout exceeded when trying to connect' });
    release();
    expect((await held).status).toBe(201);
    // nothing was kept for the refused request: its retry runs
    expect((await post('/busy/lease', 'starved')).status).toBe(201);
  });

  it('lock timeout under the transactional handler → 503 idempotency_store_timeout; writes rolled back, the key stays free', async () => {
    await store.dataSource!.getRepository(TestReport).save({ requestKey: 'contended', title: 'before' });
    // Another session holds the business row's lock past the store's lockTimeout (SET LOCAL in the run's transaction).
    const client = new pg.Client({ connectionString: (store.dataSource!.options as { url: string }).url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT 1 FROM idem_test_reports WHERE "requestKey" = 'contended' FOR UPDATE`);
      const answer = await post('/busy/contended', 'contended-1');
      expectProblem(answer, 503, 'idempotency_store_timeout');
      retryAfterSeconds(answer);
      expect(storeErrors.at(-1)).toMatchObject({ detail: 'handler', code: 'idempotency_store_timeout', outcome: 'timeout', cause: expect.stringContaining('lock timeout') });
    } finally {
      await client.query('ROLLBACK');
      await client.end();
    }
    const retried = await post('/busy/contended', 'contended-1');
    expect({ status: retried.status, replayed: retried.headers['idempotent-replayed'] }).toEqual({ status: 201, replayed: undefined });
  });
});
