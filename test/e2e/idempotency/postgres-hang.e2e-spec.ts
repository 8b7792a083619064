// A PostgreSQL server of the spec's own hangs (every process of it stopped with SIGSTOP, by pid)
// while a request is inside its transaction, at its COMMIT, or inside a lease-mode handler: the
// request is answered at node-postgres' query_timeout plus a small margin, never after a second
// round trip to the silent server, and the record decides the outcome once the server resumes.
import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import type { DataSource, EntityManager } from 'typeorm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, IdempotencyTransaction } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../../support/postgres.js';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, until, type IdempotencyTestApp } from './support.js';
import { TestReport } from './stores.js';

const QUERY_TIMEOUT_MS = 1_500;
/**
 * Loopback HTTP and a loaded 2-core machine on top of one query_timeout: waits measured here are
 * 20–150 ms past it; a second round trip to the silent server would add a whole query_timeout.
 */
const MARGIN_MS = 700;

let own: OwnPostgres;
let dataSource: DataSource;
/** Stops the server from inside the handler or the store, at the exact step a test wants. */
let freezeAt: 'after-write' | 'commit' | undefined;
let frozenAt = 0;
let runs = 0;

function freezeNow(): void {
  freezeAt = undefined;
  own.server.freeze();
  frozenAt = performance.now();
}

@Controller('hang')
class HangController {
  @Post('tx')
  @Idempotent({ transactional: true })
  async transactional(@Body() body: { key: string }, @IdempotencyTransaction() manager: EntityManager) {
    runs++;
    const row = await manager.save(TestReport, manager.create(TestReport, { requestKey: body.key, title: 'tx' }));
    if (freezeAt === 'after-write') {
      freezeNow();
      // the handler's next statement gets no answer: it fails at query_timeout
      await manager.query('SELECT 1');
    }
    return { id: row.id };
  }

  @Post('lease')
  @Idempotent({ lease: 10_000 })
  async lease(@Body() body: { key: string }) {
    runs++;
    if (freezeAt === 'after-write') {
      freezeNow();
      // one statement (TypeORM's save() would wrap it in a transaction of its own, whose ROLLBACK
      // after the timeout waits a second query_timeout inside the handler)
      await dataSource.query('INSERT INTO idem_test_reports ("requestKey", title) VALUES ($1, $2)', [body.key, 'lease']);
    }
    return { ok: true };
  }
}

const rowsOf = async (key: string) => Number((await dataSource.query('SELECT count(*) AS n FROM idem_test_reports WHERE "requestKey" = $1', [key]))[0].n);

describe.skipIf(!hasPostgres)('PostgreSQL hanging (SIGSTOP) under an idempotent request', () => {
  beforeAll(async () => {
    own = await startOwnPostgres([IdempotencyRecord, TestReport], { poolSize: 4, connectTimeoutMs: 1_000, queryTimeoutMs: QUERY_TIMEOUT_MS });
    dataSource = own.dataSource;
  });
  afterAll(() => own?.close());
  afterEach(() => {
    freezeAt = undefined;
    own.server.thaw();
  });

  describe.each(platforms)('on %s', (platform) => {
    let harness: IdempotencyTestApp;
    let app: INestApplication;
    beforeAll(async () => {
      const store = new TypeOrmIdempotencyStore(dataSource, {
        onQuery: ({ operation }) => {
          if (operation === 'commit' && freezeAt === 'commit') freezeNow();
        },
      });
      harness = await createIdempotencyApp(platform, { controllers: [HangController], idempotency: { store } });
      app = harness.app;
    });
    afterAll(() => app?.close());

    const post = (route: string, key: string) => request(app.getHttpServer()).post(`/hang/${route}`).set('Idempotency-Key', key).send({ key });
    const retryUntilAnswered = async (route: string, key: string) => {
      let answer = await post(route, key);
      for (let i = 0; i < 20 && (answer.status === 503 || answer.status === 409); i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        answer = await post(route, key);
      }
      return answer;
    };

    it('transactional: a handler statement without answer is answered 503 at query_timeout, without a ROLLBACK queued behind it; nothing is kept', async () => {
      const key = `${platform}-tx-silent-handler`;
      freezeAt = 'after-write';
      const answer = await post('tx', key);
      const waited = performance.now() - frozenAt;
      expect(answer.status).toBe(503);
      expect(answer.headers['content-type']).toContain('application/problem+json');
      expect(answer.headers['retry-after']).toBeDefined();
      expect(answer.body.code).toBe('idempotency_store_timeout');
      expect(waited).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50);
      expect(waited).toBeLessThan(QUERY_TIMEOUT_MS + MARGIN_MS);

      own.server.thaw();
      // the closed connection rolled the transaction back: the retry runs it, once
      const before = runs;
      const retried = await retryUntilAnswered('tx', key);
      expect(retried.status).toBe(201);
      expect(runs - before).toBe(1);
      expect(await rowsOf(key)).toBe(1);
    }, 20_000);

    it('transactional: a COMMIT without answer is answered 503 "outcome not known yet" at query_timeout; the retry gets the stored response once it committed', async () => {
      const key = `${platform}-tx-silent-commit`;
      freezeAt = 'commit';
      const answer = await post('tx', key);
      const waited = performance.now() - frozenAt;
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBeDefined();
      expect(answer.body.code).toBe('idempotency_store_timeout');
      expect(answer.body.detail).toMatch(/whether it was applied is not known yet/);
      expect(waited).toBeLessThan(QUERY_TIMEOUT_MS + MARGIN_MS);
      expect(harness.named('idempotency_store_error').at(-1)).toMatchObject({ detail: 'commit_unknown', code: 'idempotency_store_timeout' });

      own.server.thaw();
      // the COMMIT was in the server's socket: it committed when the server resumed
      const before = runs;
      const retried = await retryUntilAnswered('tx', key);
      expect(retried.status).toBe(201);
      expect(retried.headers['idempotent-replayed']).toBe('true');
      expect(runs).toBe(before);
      expect(await rowsOf(key)).toBe(1);
    }, 20_000);

    it('lease mode: a handler failing on the silent database gets its own answer at query_timeout; the release follows in the background', async () => {
      const key = `${platform}-lease-silent-handler`;
      freezeAt = 'after-write';
      const answer = await post('lease', key);
      const waited = performance.now() - frozenAt;
      // lease mode delivers the handler's own outcome: its database error, a 500 here
      expect(answer.status).toBe(500);
      expect(waited).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50);
      expect(waited).toBeLessThan(QUERY_TIMEOUT_MS + MARGIN_MS);

      own.server.thaw();
      // released, or held until its lease ends by a release that could not land: never run concurrently
      await until(async () => (await retryUntilAnswered('lease', key)).status === 201, 15_000, 'the retry to be acknowledged');
    }, 30_000);
  });
});
