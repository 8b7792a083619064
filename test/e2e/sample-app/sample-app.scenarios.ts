// The sample app's e2e scenarios, shared by the SQLite and PostgreSQL spec files: the real app
// module (TypeORM, nestjs-pino, terminus, OpenTelemetry metrics) against a real model service on a
// free loopback port, on Express and on Fastify.
import type { INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ResilienceEvents, type ResilienceEvent } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../../sample-app/app.module.js';
import { startModelService, type ModelService } from '../../../sample-app/model-service/model-service.js';
import { ReportQueue } from '../../../sample-app/reports/report-queue.service.js';
import type { SampleAppOptions } from '../../../sample-app/sample-app.options.js';
import { createApp, platforms, type Platform } from '../../support/app.js';

/** Where a scenario run keeps its data. */
export interface ScenarioDatabase {
  /** Options that point the app at the database (`databaseUrl` or `sqliteFile`), and at Redis for the idempotency records (`redisUrl`). */
  options: Pick<SampleAppOptions, 'databaseUrl' | 'sqliteFile' | 'redisUrl' | 'redisKeyPrefix'>;
}

/** Which database the scenarios run on (`sqlite+redis`: idempotency records in Redis, lease mode). */
export type ScenarioDialect = 'sqlite' | 'postgres' | 'sqlite+redis';

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Polls `read` every 20 ms until `done` holds; fails with the last value after `timeoutMs`. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > end) throw new Error(`still not there after ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Registers the whole scenario suite for one database, on both platforms. */
export function describeSampleApp(dialect: ScenarioDialect, database: () => Promise<ScenarioDatabase>): void {
  for (const platform of platforms) describeOnPlatform(dialect, platform, database);
}

function describeOnPlatform(dialect: ScenarioDialect, platform: Platform, database: () => Promise<ScenarioDatabase>): void {
  const label = { postgres: 'PostgreSQL', sqlite: 'SQLite', 'sqlite+redis': 'SQLite with idempotency keys in Redis' }[dialect];
  describe(`sample app on ${label} (${platform})`, () => {
    let app: INestApplication;
    let model: ModelService;
    let gate: { entered: Deferred; release: Deferred } | undefined;
    const run = randomBytes(4).toString('hex');
    let used: ScenarioDatabase['options'];
    const key = (name: string) => `${platform}-${run}-${name}`;
    const breakDurationMs = 400;

    beforeAll(async () => {
      model = await startModelService({ port: 0, latencyMs: 5, seed: 1, log: () => undefined });
      const { options } = await database();
      used = options;
      app = await createApp(platform, {
        imports: [
          AppModule.forRoot({
            ...options,
            modelServiceUrl: model.url,
            logLevel: 'silent',
            // small budgets so a hung model fails in about a second
            generation: { totalMs: 1_500, attemptMs: 300, maxAttempts: 4 },
            breaker: { consecutiveFailures: 5, breakDurationMs },
            seedAccounts: { acme: 100, [`poor-${platform}`]: 1 },
            healthPingTimeoutMs: 500,
            hooks: {
              // Holds the first request of the 409 scenario inside its transaction, deterministically.
              afterReportRecorded: async () => {
                const current = gate;
                if (!current) return;
                gate = undefined;
                current.entered.resolve();
                await current.release.promise;
              },
            },
          }),
        ],
      });
    });

    afterAll(async () => {
      gate?.release.resolve();
      await app?.get(ReportQueue).idle();
      await app?.close();
      await model?.close();
    });

    const server = () => app.getHttpServer();
    const postReport = (idempotencyKey: string, topic: string, account = 'acme') =>
      request(server())
        .post('/reports')
        .set('x-account-id', account)
        .set('idempotency-key', idempotencyKey)
        .send({ topic });
    const getReport = (id: string, account = 'acme') => request(server()).get(`/reports/${id}`).set('x-account-id', account);
    const credits = async (account = 'acme') => {
      const response = await request(server()).get(`/accounts/${account}`).expect(200);
      return response.body.credits as number;
    };
    const finished = async (id: string) =>
      (await eventually(() => getReport(id), (response) => response.body.status !== 'processing')).body;
    // Background generations of earlier scenarios must not draw from the seeded failure sequence.
    const settle = () => app.get(ReportQueue).idle();
    const resetModel = () => model.chaos({ failureRate: 0, latencyMs: 5, down: false, hang: false, seed: 1 });

    it('accepts a report with 202 and a Location, and generates it in the background', async () => {
      const response = await postReport(key('accept'), 'tides').expect(202);
      expect(response.body).toEqual({ id: expect.any(String), status: 'processing' });
      expect(response.headers.location).toBe(`/reports/${response.body.id}`);
      const report = await finished(response.body.id);
      expect(report).toMatchObject({ status: 'completed', topic: 'tides', attempts: 1 });
      expect(report.text).toContain('tides');
    });

    it('charges a duplicate POST once and replays the first answer', async () => {
      const before = await credits();
      const callsBefore = model.state.requests;
      const first = await postReport(key('dup'), 'glaciers').expect(202);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      await finished(first.body.id);
      const second = await postReport(key('dup'), 'glaciers').expect(202);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.body).toEqual(first.body);
      expect(second.headers.location).toBe(`/reports/${first.body.id}`);
      expect(await credits()).toBe(before - 1);
      await app.get(ReportQueue).idle();
      // the replay started no second generation
      expect(model.state.requests - callsBefore).toBe(1);
    });

    it('answers 409 at once to a concurrent duplicate while the first is in its transaction, then replays the first', async () => {
      const before = await credits();
      const { entered, release } = (gate = { entered: deferred(), release: deferred() });
      // A safety valve: a duplicate that waits for the first fails below instead of hanging the test.
      const limit = setTimeout(() => release.resolve(), 3_000);
      const first = postReport(key('race'), 'volcanoes').then((response) => response);
      try {
        await entered.promise;
        const second = await Promise.race([
          postReport(key('race'), 'volcanoes').then((response) => response),
          release.promise.then(() => 'released' as const),
        ]);
        if (second === 'released') throw new Error('The duplicate was answered only after the first committed: it waited instead of getting 409.');
        expect(second.status).toBe(409);
        expect(second.headers['content-type']).toContain('application/problem+json');
        expect(second.body.code).toBe('idempotency_request_in_progress');
        expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      } finally {
        clearTimeout(limit);
        release.resolve();
      }
      const firstResponse = await first;
      expect(firstResponse.status).toBe(202);
      const retry = await postReport(key('race'), 'volcanoes').expect(202);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.body).toEqual(firstResponse.body);
      expect(await credits()).toBe(before - 1);
    });

    it('answers 422 when the same key comes with another body, charging nothing', async () => {
      await postReport(key('mismatch'), 'deserts').expect(202);
      const before = await credits();
      const other = await postReport(key('mismatch'), 'oceans');
      expect(other.status).toBe(422);
      expect(other.headers['content-type']).toContain('application/problem+json');
      expect(await credits()).toBe(before);
    });

    it('rejects bad input before charging: 400 body, 401 account, 400 key, 402 credits', async () => {
      const before = await credits();
      const invalid = await request(server())
        .post('/reports')
        .set('x-account-id', 'acme')
        .set('idempotency-key', key('invalid'))
        .send({ topic: 42 });
      expect(invalid.status).toBe(400);
      expect(invalid.headers['content-type']).toContain('application/problem+json');
      expect(invalid.body).toMatchObject({ status: 400, code: 'validation_failed' });
      expect(invalid.body.detail).toContain('topic');

      const anonymous = await request(server()).post('/reports').set('idempotency-key', key('anon')).send({ topic: 'x' });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.code).toBe('account_required');

      const keyless = await request(server()).post('/reports').set('x-account-id', 'acme').send({ topic: 'x' });
      expect(keyless.status).toBe(400);
      expect(await credits()).toBe(before);

      const poor = `poor-${platform}`;
      await postReport(key('poor-1'), 'first', poor).expect(202);
      const broke = await postReport(key('poor-2'), 'second', poor);
      expect(broke.status).toBe(402);
      expect(broke.headers['content-type']).toContain('application/problem+json');
      expect(broke.body).toMatchObject({ status: 402, code: 'insufficient_credits' });
      expect(await credits(poor)).toBe(0);
    });

    it('completes a report when the model fails half of the calls (retries with backoff)', async () => {
      // seed 9: the first two calls answer 503, the third 200 (see model-service.e2e-spec.ts)
      await settle();
      model.chaos({ failureRate: 0.5, seed: 9 });
      const before = { failed: model.state.failed, succeeded: model.state.succeeded };
      const retries: ResilienceEvent[] = [];
      const unsubscribe = app.get(ResilienceEvents).subscribe((event) => {
        if (event.event === 'retry') retries.push(event);
      });
      const requestId = `flaky-${randomBytes(4).toString('hex')}`;
      try {
        const accepted = await postReport(key('flaky'), 'coral reefs').set('x-request-id', requestId).expect(202);
        const report = await finished(accepted.body.id);
        expect(report).toMatchObject({ status: 'completed', attempts: 3 });
        expect(model.state.failed - before.failed).toBe(2);
        expect(model.state.succeeded - before.succeeded).toBe(1);
        // the generation runs after the request's transaction committed, and still carries its id
        expect(retries.map((event) => [event.policy, event.requestId])).toEqual([
          ['model-service', requestId],
          ['model-service', requestId],
        ]);
      } finally {
        unsubscribe();
        resetModel();
      }
    });

    it('fails a report with reason "timeout" when the model hangs, and cancels the hung calls', async () => {
      await settle();
      model.chaos({ hang: true });
      const cancelledBefore = model.state.cancelled;
      try {
        const accepted = await postReport(key('hang'), 'deep sea vents').expect(202);
        const report = await finished(accepted.body.id);
        expect(report).toMatchObject({ status: 'failed', reason: 'timeout' });
        // every attempt's fetch was aborted: the model service saw each socket close
        await eventually(async () => model.state, (state) => state.inFlight === 0, 2_000);
        expect(model.state.cancelled - cancelledBefore).toBeGreaterThanOrEqual(2);
      } finally {
        resetModel();
      }
      // a success closes the gap in the consecutive-failure count for the next scenarios
      await finished((await postReport(key('after-hang'), 'calm').expect(202)).body.id);
    });

    it('keeps /health 200 but degraded while the model service is down (a dependency, not this instance), up again after', async () => {
      const healthy = await request(server()).get('/health');
      expect(healthy.status).toBe(200);
      expect(healthy.body.info).toMatchObject({
        database: { status: 'up' },
        idempotency_store: { status: 'up' },
        model_service: { status: 'up' },
        circuit_breakers: { status: 'up' },
      });
      model.chaos({ down: true });
      try {
        const sick = await request(server()).get('/health');
        expect(sick.status).toBe(200);
        expect(sick.body.status).toBe('degraded');
        expect(sick.body.details.model_service.status).toBe('degraded');
        expect(sick.body.details.model_service.message).toContain('ping');
        expect(sick.body.info.database.status).toBe('up');
        // liveness ignores dependencies
        await request(server()).get('/health/live').expect(200);
      } finally {
        resetModel();
      }
      await request(server()).get('/health').expect(200);
    });

    it('opens the shared breaker when the model stays down: circuit_open reports, fast 503s, then recovers', async () => {
      await settle();
      model.chaos({ down: true });
      try {
        const first = await postReport(key('down-1'), 'monsoons').expect(202);
        expect((await finished(first.body.id)).status).toBe('failed');
        const second = await postReport(key('down-2'), 'typhoons').expect(202);
        expect(await finished(second.body.id)).toMatchObject({ status: 'failed', reason: 'circuit_open' });

        const callsBefore = model.state.requests;
        const preview = await request(server()).get('/preview').query({ topic: 'storms' }).set('x-account-id', 'acme');
        expect(preview.status).toBe(503);
        expect(preview.body.code).toBe('circuit_open');
        expect(Number(preview.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        // refused without calling the model at all
        expect(model.state.requests).toBe(callsBefore);

        // the open breaker is in the details, but the instance stays in rotation
        const health = await request(server()).get('/health');
        expect(health.status).toBe(200);
        expect(health.body.details.circuit_breakers.status).toBe('degraded');
      } finally {
        resetModel();
      }
      const probe = await eventually(
        () => request(server()).get('/preview').query({ topic: 'recovery' }),
        (response) => response.status === 200,
        breakDurationMs * 10,
      );
      expect(probe.body.text).toContain('recovery');
      await request(server()).get('/health').expect(200);
    });

    if (dialect === 'sqlite+redis') {
      it('keeps the idempotency records in Redis, and readiness checks Redis', async () => {
        const ready = await request(server()).get('/health').expect(200);
        expect(ready.body.info.redis).toEqual({ status: 'up', latencyMs: expect.any(Number) });
        await postReport(key('in-redis'), 'where do keys live').expect(202);
        const redis = new Redis(used.redisUrl!);
        try {
          const records = await redis.keys(`${used.redisKeyPrefix}*`);
          expect(records.length).toBeGreaterThanOrEqual(1);
          expect(new Set(await Promise.all(records.map((record) => redis.hget(record, 'status'))))).toEqual(new Set(['completed']));
        } finally {
          redis.disconnect();
        }
      });
    }

    it('echoes X-Request-Id, or generates one', async () => {
      const echoed = await request(server()).get('/health/live').set('x-request-id', 'req-12345');
      expect(echoed.headers['x-request-id']).toBe('req-12345');
      const generated = await request(server()).get('/health/live');
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('serves the resilience counters on /metrics after traffic', async () => {
      const response = await request(server()).get('/metrics').expect(200);
      expect(response.headers['content-type']).toContain('text/plain');
      expect(response.text).toMatch(/^resilience_events(_total)?\{[^}]*event_name="retry"[^}]*\} [1-9]/m);
      expect(response.text).toMatch(/^idempotency_requests(_total)?\{[^}]*outcome="replayed"[^}]*\} [1-9]/m);
      expect(response.text).toMatch(/^idempotency_requests(_total)?\{[^}]*outcome="conflict"[^}]*\} [1-9]/m);
    });
  });
}
