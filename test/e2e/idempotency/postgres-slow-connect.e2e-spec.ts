// PostgreSQL that is healthy but slow to open a new connection (a cold pool under a burst on a
// busy host: the handshake completes, then the server takes longer than connectTimeoutMS to get
// round to the connection). A TCP relay on loopback makes chosen connections stall like that. A
// store operation whose connection never opened has sent nothing, so the store tries again on a
// new connection within its connect retry window (the request still gets its one execution); a
// connection that is refused or reset is not tried again, and the wait stays within the bound.
import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, IdempotencyTransaction } from 'nest-resilience';
import { storeFailureOf } from 'nest-resilience/core';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { platforms } from '../../support/app.js';
import { createTestDatabase, hasPostgres } from '../../support/postgres.js';
import { startStallingRelay, type StallingRelay } from '../../support/stalling-relay.js';
import { createIdempotencyApp, until, type IdempotencyTestApp } from './support.js';
import { TestReport } from './stores.js';

/** ~25 times what opening a PostgreSQL connection takes on this machine (~40 ms), so a connection the relay forwards opens in time even under load. */
const CONNECT_TIMEOUT_MS = 1_000;
const QUERY_TIMEOUT_MS = 2_000;
/** The default connect retry window is query_timeout: 2 attempts of 1 000 ms fit in it. */
const ATTEMPTS = Math.floor(QUERY_TIMEOUT_MS / CONNECT_TIMEOUT_MS);
/** Late timers and loopback HTTP on a loaded 2-core machine (the chaos suite allows PostgreSQL 1 s too). */
const MARGIN_MS = 1_000;

let runs = 0;

@Controller('slow')
class SlowConnectController {
  constructor(private readonly dataSource: DataSource) {}

  @Post('lease')
  @Idempotent({ lease: 10_000 })
  async lease(@Body() body: { key: string }) {
    runs++;
    await this.dataSource.query('INSERT INTO idem_test_reports ("requestKey", title) VALUES ($1, $2)', [body.key, 'lease']);
    return { ok: true };
  }

  @Post('tx')
  @Idempotent({ transactional: true })
  async transactional(@Body() body: { key: string }, @IdempotencyTransaction() manager: EntityManager) {
    runs++;
    await manager.save(TestReport, manager.create(TestReport, { requestKey: body.key, title: 'tx' }));
    return { ok: true };
  }
}

describe.skipIf(!hasPostgres)('PostgreSQL slow to open a connection (a relay stalls new connections)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let direct: DataSource;
  let relay: StallingRelay;
  let viaRelay: DataSource;
  /** node-postgres' pool behind `viaRelay` (its documented counters). */
  let pool: { totalCount: number };

  beforeAll(async () => {
    database = await createTestDatabase('idem_connect');
    direct = await new DataSource({ type: 'postgres', url: database.url, entities: [IdempotencyRecord, TestReport], synchronize: true } as DataSourceOptions).initialize();
    const target = new URL(database.url);
    relay = await startStallingRelay(target.hostname, Number(target.port || 5432));
    const url = new URL(database.url);
    url.hostname = '127.0.0.1';
    url.port = String(relay.port);
    viaRelay = await new DataSource({
      type: 'postgres',
      url: url.toString(),
      entities: [IdempotencyRecord, TestReport],
      connectTimeoutMS: CONNECT_TIMEOUT_MS,
      // idle connections close at once, so each request opens new ones (the cold pool of a burst)
      extra: { query_timeout: QUERY_TIMEOUT_MS, idleTimeoutMillis: 1 },
    } as DataSourceOptions).initialize();
    pool = (viaRelay.driver as unknown as { master: { totalCount: number } }).master;
  });
  afterAll(async () => {
    await viaRelay?.destroy().catch(() => undefined);
    await relay?.close();
    await direct?.destroy().catch(() => undefined);
    await database?.drop();
  });
  afterEach(() => {
    relay.mode = 'forward';
    relay.stallNext(0);
  });

  const rowsOf = async (key: string) => Number((await direct.query('SELECT count(*) AS n FROM idem_test_reports WHERE "requestKey" = $1', [key]))[0].n);
  /** Waits until the pool holds no connection, so the request's first statement opens a new one. */
  const coldPool = () => until(() => pool.totalCount === 0, 5_000, 'the pool to close its idle connections');

  it('connectRetryWindow: 0 opens a connection once, as node-postgres does; a window that is not a whole number of ms is refused', async () => {
    const store = new TypeOrmIdempotencyStore(viaRelay, { connectRetryWindow: 0 });
    await coldPool();
    const before = relay.connections;
    relay.stallNext(1);
    const claim = { namespace: 'default', scope: '', key: 'no-retry', fingerprint: 'f', method: 'POST', path: '/slow', leaseMs: 10_000, ttlMs: 60_000 };
    const failure = await store.claim(claim).then(() => undefined, (error: unknown) => error);
    expect(storeFailureOf(failure)).toBe('unavailable');
    expect(relay.connections - before).toBe(1);
    for (const connectRetryWindow of [-1, 2.5, Number.NaN]) {
      expect(() => new TypeOrmIdempotencyStore(viaRelay, { connectRetryWindow })).toThrow(/connectRetryWindow must be a non-negative integer of ms .*e\.g\. connectRetryWindow: 5_000/);
    }
  });

  describe.each(platforms)('on %s', (platform) => {
    let harness: IdempotencyTestApp;
    let app: INestApplication;
    beforeAll(async () => {
      harness = await createIdempotencyApp(platform, {
        controllers: [SlowConnectController],
        providers: [{ provide: DataSource, useValue: viaRelay }],
        idempotency: { store: new TypeOrmIdempotencyStore(viaRelay) },
      });
      app = harness.app;
    });
    afterAll(() => app?.close());

    const post = (route: string, key: string) => request(app.getHttpServer()).post(`/slow/${route}`).set('Idempotency-Key', key).send({ key });

    it.each(['lease', 'tx'])('%s mode: a claim whose first connection stalled past connectTimeoutMS runs on a new connection, once', async (route) => {
      const key = `${platform}-${route}-stalled-once`;
      await coldPool();
      const before = { runs, connections: relay.connections, storeErrors: harness.named('idempotency_store_error').length };
      relay.stallNext(1);
      const started = performance.now();
      const answer = await post(route, key);
      const waited = performance.now() - started;
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      expect(runs - before.runs).toBe(1);
      expect(await rowsOf(key)).toBe(1);
      // the stalled connection, then the one the claim ran on (and the handler's and completion's)
      expect(relay.connections - before.connections).toBeGreaterThanOrEqual(2);
      expect(waited).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 50);
      expect(waited).toBeLessThan(QUERY_TIMEOUT_MS + MARGIN_MS);
      expect(harness.named('idempotency_store_error')).toHaveLength(before.storeErrors);

      const replay = await post(route, key);
      expect(replay.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(runs - before.runs).toBe(1);
    });

    it.each(['lease', 'tx'])('%s mode: connections that never open are tried within query_timeout, then answered 503 idempotency_store_unavailable; the handler never ran', async (route) => {
      const key = `${platform}-${route}-stalled-always`;
      await coldPool();
      const before = { runs, connections: relay.connections };
      relay.mode = 'stall';
      const started = performance.now();
      const answer = await post(route, key);
      const waited = performance.now() - started;
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('idempotency_store_unavailable');
      expect(answer.headers['retry-after']).toBeDefined();
      expect(relay.connections - before.connections).toBe(ATTEMPTS);
      expect(waited).toBeGreaterThanOrEqual(ATTEMPTS * CONNECT_TIMEOUT_MS - 50);
      // the documented bound: max(query_timeout, connectTimeoutMS) + the margin
      expect(waited).toBeLessThan(QUERY_TIMEOUT_MS + MARGIN_MS);
      expect(runs - before.runs).toBe(0);

      relay.mode = 'forward';
      const retried = await post(route, key);
      expect(retried.status).toBe(201);
      expect(runs - before.runs).toBe(1);
      expect(await rowsOf(key)).toBe(1);
    });

    it('a new connection ended by a stopping server in the same read as its ReadyForQuery: answered 503, the process keeps running', async () => {
      // node-postgres hands the connection over while parsing ReadyForQuery and emits the FATAL that
      // follows in the same read at once: without a listener from the handover on, that 'error' is
      // unheard and the test process dies (vitest reports an uncaught exception)
      const key = `${platform}-terminated`;
      await coldPool();
      const before = { runs, connections: relay.connections };
      relay.mode = 'terminate-when-ready';
      const answer = await post('lease', key);
      expect(answer.status, JSON.stringify(answer.body)).toBe(503);
      expect(answer.body.code).toBe('idempotency_store_unavailable');
      expect(relay.connections - before.connections).toBeGreaterThanOrEqual(1);
      expect(runs - before.runs).toBe(0);

      relay.mode = 'forward';
      const retried = await post('lease', key);
      expect(retried.status).toBe(201);
      expect(runs - before.runs).toBe(1);
    });

    it('a connection reset by the server side is not tried again: answered 503 at once', async () => {
      const key = `${platform}-reset`;
      await coldPool();
      const before = { runs, connections: relay.connections };
      relay.mode = 'reset';
      const started = performance.now();
      const answer = await post('lease', key);
      const waited = performance.now() - started;
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('idempotency_store_unavailable');
      expect(relay.connections - before.connections).toBe(1);
      // not after a connect timeout, let alone the retry window
      expect(waited).toBeLessThan(CONNECT_TIMEOUT_MS);
      expect(runs - before.runs).toBe(0);
    });
  });
});
