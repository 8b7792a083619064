import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { ResilienceEvents } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ResilienceLogger } from '../../../lib/observability/resilience-logger.js';
import { platforms } from '../../support/app.js';
import { LogCapture, createPinoApp } from './pino-capture.js';

@Controller('emit')
class EmitController {
  constructor(private readonly events: ResilienceEvents) {}

  @Get()
  emit(): { ok: true } {
    this.events.emit({
      event: 'retry',
      policy: 'EmitController.emit',
      attempt: 1,
      delayMs: 100,
      errorType: 'UpstreamHttpError',
      status: 503,
      route: 'GET /emit',
      error: new Error('password=hunter2'),
    });
    this.events.emit({ event: 'idempotency_replayed', policy: 'GET /emit', key: 'client-key-123' });
    this.events.emit({ event: 'idempotency_store_error', policy: 'GET /emit', errorType: 'QueryFailedError' });
    this.events.emit({ event: 'attempt_end', policy: 'EmitController.emit', attempt: 2, durationMs: 5, outcome: 'success' });
    return { ok: true };
  }
}

const logs = new LogCapture();

describe.each(platforms)('ResilienceLogger through nestjs-pino (%s)', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createPinoApp(platform, logs, { controllers: [EmitController], providers: [ResilienceEvents, ResilienceLogger] });
  });
  afterAll(() => app.close());
  beforeEach(() => logs.clear());

  it('renders each event as one JSON line with the fields at top level and the pino-http request id', async () => {
    await request(app.getHttpServer()).get('/emit').set('x-request-id', 'req-abc').expect(200);
    const lines = logs.resilience();
    expect(lines.map((l) => l.event)).toEqual(['retry', 'idempotency_replayed', 'idempotency_store_error']);
    const [retry, replayed, storeError] = lines;
    expect(retry).toMatchObject({
      level: 30,
      context: 'Resilience',
      msg: 'Attempt 1 of EmitController.emit failed (UpstreamHttpError 503); retrying in 100 ms',
      event: 'retry',
      policy: 'EmitController.emit',
      route: 'GET /emit',
      attempt: 1,
      delayMs: 100,
      errorType: 'UpstreamHttpError',
      status: 503,
    });
    expect(retry!.req.id).toBe('req-abc');
    expect(replayed).toMatchObject({ level: 30, event: 'idempotency_replayed', key: expect.stringMatching(/^sha256:[0-9a-f]{12}$/) });
    // Nest passes error() an empty stack argument: the sentence must still be pino's msg
    expect(storeError).toMatchObject({ level: 50, msg: 'Idempotency store failed on GET /emit (QueryFailedError)' });
    expect(storeError!.req.id).toBe('req-abc');
    const text = JSON.stringify(logs.lines);
    expect(text).not.toContain('client-key-123');
    expect(text).not.toContain('hunter2');
  });
});
