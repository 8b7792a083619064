import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { platforms } from '../../support/app.js';
import { LogCapture, createPinoApp } from './pino-capture.js';
import { ReportsController } from './reports.controller.js';

// nestjs-pino keeps one pino-http instance per process: one capture for every app in this file
const logs = new LogCapture();

describe.each(platforms)('resilience events in nestjs-pino logs (%s)', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createPinoApp(platform, logs, {
      imports: [ResilienceModule.forRoot()],
      controllers: [ReportsController],
    });
  });
  afterAll(() => app.close());
  beforeEach(() => logs.clear());

  it('logs exactly two retry events carrying the request id for a request retried twice', async () => {
    const requestId = `retry-${platform}-${randomUUID()}`;
    const { body } = await request(app.getHttpServer()).get('/reports/flaky').set('x-request-id', requestId).expect(200);
    expect(body).toEqual({ call: 3 });

    const retries = logs.resilience().filter((line) => line.event === 'retry');
    expect(retries).toHaveLength(2);
    expect(retries.map((line) => line.attempt)).toEqual([1, 2]);
    for (const line of retries) {
      expect(line).toMatchObject({
        level: 30,
        context: 'Resilience',
        event: 'retry',
        requestId,
        route: 'GET /reports/flaky',
        errorType: 'UpstreamHttpError',
        status: 503,
        delayMs: expect.any(Number),
      });
      expect(line.policy).toContain('flaky');
      expect(line.req.id).toBe(requestId);
      expect(line.msg).toMatch(/^Attempt \d of .+ failed \(UpstreamHttpError 503\); retrying in \d+ ms$/);
    }
    // a request that recovered is not an error: nothing above info, and no per-attempt noise
    expect(logs.resilience().filter((line) => line.level > 30)).toEqual([]);
    expect(logs.resilience().some((line) => line.event === 'attempt_end')).toBe(false);
  });

  it('logs replayed for a replayed idempotent request, with a hashed key and never the raw key', async () => {
    const rawKey = `order-${randomUUID()}`;
    await request(app.getHttpServer()).post('/reports').set('idempotency-key', rawKey).set('x-request-id', 'first').send({ title: 'Q3' }).expect(201);
    const replay = await request(app.getHttpServer())
      .post('/reports')
      .set('idempotency-key', rawKey)
      .set('x-request-id', 'second')
      .send({ title: 'Q3' })
      .expect(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');

    const replayed = logs.resilience().filter((line) => line.event === 'idempotency_replayed');
    expect(replayed).toHaveLength(1);
    expect(replayed[0]).toMatchObject({ level: 30, requestId: 'second', route: 'POST /reports', key: expect.stringMatching(/^sha256:[0-9a-f]+$/) });
    expect(replayed[0]!.req.id).toBe('second');
    // the library's own lines never carry the raw key; with the observability guide's pino redaction, no line does
    expect(JSON.stringify(logs.resilience())).not.toContain(rawKey);
    expect(logs.lines.length).toBeGreaterThan(logs.resilience().length);
    expect(JSON.stringify(logs.lines)).not.toContain(rawKey);
  });
});
