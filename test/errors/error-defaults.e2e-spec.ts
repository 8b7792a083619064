import 'reflect-metadata';
import { Body, Controller, Get, Injectable, NotFoundException, Post, type INestApplication } from '@nestjs/common';
import {
  CircuitBreaker,
  Fallback,
  Idempotent,
  IdempotencyTransaction,
  ResilienceModule,
  Retryable,
  assertOk,
} from 'nest-resilience';
import request from 'supertest';
import type { EntityManager } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStore, TestReport, type StoreUnderTest } from '../idempotency/stores.js';
import { startDependency, type LoopbackServer } from '../resilience/loopback-servers.js';
import { createApp, platforms } from '../support/app.js';
import { hasPostgres } from '../support/postgres.js';

/** The dependency every route calls; its base URL is set once it listens. */
let upstream: LoopbackServer;
/** A loopback port nothing listens on (ECONNREFUSED). */
let closedPort: number;

const call = async (path: string) => (await assertOk(await fetch(`${upstream.url}${path}`))).json();

@Injectable()
class QuotesClient {
  /** Opens after one failure, for a minute. */
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async quote(): Promise<unknown> {
    return call('/quote-down');
  }
}

@Controller('errors')
class ErrorsController {
  constructor(private readonly quotes: QuotesClient) {}

  /** Upstream 503 + Retry-After: 60 under the default 30 s deadline: the retry is refused. */
  @Get('retry-after')
  @Retryable()
  retryAfter() {
    return call('/busy-60');
  }

  @Get('exhausted')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  exhausted() {
    return call('/busy');
  }

  @Get('rejected')
  @Retryable()
  rejected() {
    return call('/bad-request');
  }

  @Get('own-exception')
  @Retryable()
  ownException() {
    throw new NotFoundException('no such report');
  }

  @Get('refused')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  async refused() {
    return (await fetch(`http://127.0.0.1:${closedPort}/`)).json();
  }

  /** The README's example: the fallback answers the first upstream 5xx, before the breaker opens. */
  @Get('fallback')
  @Fallback({ items: [], degraded: true })
  @CircuitBreaker()
  fallback() {
    return call('/broken');
  }

  /** Undecorated: the open circuit of the service method still answers problem+json. */
  @Get('plain-open-circuit')
  plainOpenCircuit() {
    return this.quotes.quote();
  }
}

describe.each(platforms)('error defaults (%s)', (platform) => {
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    upstream = await startDependency((path) => {
      if (path === '/busy-60') return { status: 503, headers: { 'retry-after': '60' } };
      if (path === '/bad-request') return { status: 400, body: { secret: 'upstream-internal-detail' } };
      if (path === '/quote-down' || path === '/busy' || path === '/broken') return { status: path === '/broken' ? 500 : 503 };
      return { status: 200 };
    });
    const probe = await startDependency(() => ({ status: 200 }));
    closedPort = Number(new URL(probe.url).port);
    await probe.close();
    app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [ErrorsController], providers: [QuotesClient] });
  });
  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });

  const problemOf = (response: request.Response) => {
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    return response.body as { code: string; detail: string; status: number };
  };

  it('answers 503 upstream_unavailable with the upstream Retry-After when the hint is past the deadline (no retry)', async () => {
    const before = upstream.callsTo('/busy-60');
    const response = await http().get('/errors/retry-after').expect(503);
    expect(problemOf(response)).toMatchObject({ status: 503, code: 'upstream_unavailable' });
    expect(response.headers['retry-after']).toBe('60');
    expect(upstream.callsTo('/busy-60') - before).toBe(1);
  });

  it('answers 503 with a Retry-After after exhausting retries of a transient upstream failure', async () => {
    const before = upstream.callsTo('/busy');
    const response = await http().get('/errors/exhausted').expect(503);
    expect(problemOf(response).code).toBe('upstream_unavailable');
    expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(upstream.callsTo('/busy') - before).toBe(2);
  });

  it('answers 502 upstream_rejected for an upstream 400, without retrying and without its body', async () => {
    const before = upstream.callsTo('/bad-request');
    const response = await http().get('/errors/rejected').expect(502);
    expect(problemOf(response)).toMatchObject({ status: 502, code: 'upstream_rejected' });
    expect(JSON.stringify(response.body)).not.toContain('upstream-internal-detail');
    expect(upstream.callsTo('/bad-request') - before).toBe(1);
  });

  it('passes the route’s own HttpException through untouched', async () => {
    const response = await http().get('/errors/own-exception').expect(404);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toMatchObject({ statusCode: 404, message: 'no such report' });
  });

  it('never sends an internal error message: a refused connection answers a generic 503', async () => {
    const response = await http().get('/errors/refused').expect(503);
    const body = JSON.stringify(problemOf(response));
    expect(body).not.toContain('127.0.0.1');
    expect(body).not.toContain('ECONNREFUSED');
    expect(body).not.toContain(String(closedPort));
  });

  it('answers the @Fallback on the first upstream 5xx, before the breaker opens (the README example)', async () => {
    const response = await http().get('/errors/fallback').expect(200);
    expect(response.body).toEqual({ items: [], degraded: true });
  });

  it('answers 503 circuit_open + Retry-After on an undecorated route whose service method’s circuit is open', async () => {
    await http().get('/errors/plain-open-circuit').expect(503);
    const before = upstream.callsTo('/quote-down');
    const response = await http().get('/errors/plain-open-circuit').expect(503);
    expect(problemOf(response).code).toBe('circuit_open');
    expect(Number(response.headers['retry-after'])).toBeGreaterThan(1);
    expect(upstream.callsTo('/quote-down')).toBe(before);
  });
});

/** How often each key's handler ran; the first run of a key kills its own database connection. */
const runsByKey = new Map<string, number>();

@Controller('tx')
class KilledConnectionController {
  @Post()
  @Idempotent({ transactional: true })
  async create(@Body() body: { key: string; title: string }, @IdempotencyTransaction() manager: EntityManager) {
    const run = (runsByKey.get(body.key) ?? 0) + 1;
    runsByKey.set(body.key, run);
    const saved = await manager.save(TestReport, manager.create(TestReport, { requestKey: body.key, title: body.title }));
    if (run === 1) await manager.query('SELECT pg_terminate_backend(pg_backend_pid())');
    return { id: saved.id, run };
  }
}

describe.skipIf(!hasPostgres)('PostgreSQL connection killed inside a transactional handler', () => {
  describe.each(platforms)('%s', (platform) => {
    let store: StoreUnderTest;
    let app: INestApplication;

    beforeAll(async () => {
      store = await createStore('postgres', { poolSize: 4 });
      app = await createApp(platform, {
        imports: [ResilienceModule.forRoot({ idempotency: { store: store.store } })],
        controllers: [KilledConnectionController],
      });
    });
    afterAll(async () => {
      await app?.close();
      await store?.close();
    });

    it('answers 503 idempotency_store_unavailable + Retry-After, rolls back, and the same key then succeeds once', async () => {
      const key = `killed-${platform}`;
      const body = { key, title: 'after the outage' };
      const killed = await request(app.getHttpServer()).post('/tx').set('Idempotency-Key', key).send(body).expect(503);
      expect(killed.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(killed.body).toMatchObject({ status: 503, code: 'idempotency_store_unavailable' });
      expect(Number(killed.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(JSON.stringify(killed.body)).not.toMatch(/terminat/i);

      const retried = await request(app.getHttpServer()).post('/tx').set('Idempotency-Key', key).send(body).expect(201);
      expect(retried.body).toMatchObject({ run: 2 });
      const replayed = await request(app.getHttpServer()).post('/tx').set('Idempotency-Key', key).send(body).expect(201);
      expect(replayed.headers['idempotent-replayed']).toBe('true');
      expect(await store.dataSource!.getRepository(TestReport).countBy({ requestKey: key })).toBe(1);
    });
  });
});
