import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Module, type INestApplication, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { CircuitBreakerService, ResilienceModule, TELEMETRY_NAMES } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { registerTestSdk, valueOf } from './otel-sdk.js';
import { ReportsController } from './reports.controller.js';

/** Plays the part of HTTP server instrumentation: one active server span per request. */
function serverSpan(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  trace.getTracer('http-server').startActiveSpan(`server ${req.headers['x-request-id'] ?? ''}`, (span) => {
    res.once('finish', () => span.end());
    next();
  });
}

@Module({ imports: [ResilienceModule.forRoot()], controllers: [ReportsController] })
class AppModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(serverSpan).forRoutes('{*splat}');
  }
}

// the SDK is registered before any app exists, as `node --import ./otel.js main.js` does
const sdk = registerTestSdk();
afterAll(() => sdk.shutdown());

describe.each(platforms)('OpenTelemetry through ResilienceModule (%s)', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createApp(platform, { imports: [AppModule] });
  });
  afterAll(() => app.close());

  it('records one attempt span per attempt with http.request.resend_count, and retry events on the server span', async () => {
    const requestId = `otel-${platform}-${randomUUID()}`;
    await request(app.getHttpServer()).get('/reports/flaky').set('x-request-id', requestId).expect(200);

    const server = sdk.spans().find((span) => span.name === `server ${requestId}`);
    expect(server).toBeDefined();
    const attempts = sdk
      .spans()
      .filter((span) => span.name === TELEMETRY_NAMES.attemptSpan && span.spanContext().traceId === server!.spanContext().traceId);
    expect(attempts.map((span) => span.attributes['resilience.attempt'])).toEqual([1, 2, 3]);
    expect(attempts.map((span) => span.attributes['http.request.resend_count'])).toEqual([undefined, 1, 2]);
    expect(attempts.map((span) => span.attributes['resilience.outcome'])).toEqual(['failure', 'failure', 'success']);
    expect(attempts[0]!.attributes['error.type']).toBe('UpstreamHttpError');

    expect(server!.events.filter((e) => e.name === 'resilience.retry').map((e) => e.attributes?.['resilience.attempt'])).toEqual([1, 2]);
    expect(server!.attributes['http.request.resend_count']).toBe(2);
    expect(String(server!.attributes['resilience.policy'])).toContain('flaky');
  });

  it('counts events, attempt durations and idempotent requests by outcome', async () => {
    const requestId = `otel-metrics-${platform}-${randomUUID()}`;
    const before = await sdk.points(TELEMETRY_NAMES.eventsCounter);
    const retriesBefore = before
      .filter((p) => p.attributes['event.name'] === 'retry' && String(p.attributes.policy).includes('flaky'))
      .reduce((sum, p) => sum + (p.value as number), 0);
    await request(app.getHttpServer()).get('/reports/flaky').set('x-request-id', requestId).expect(200);

    const events = await sdk.points(TELEMETRY_NAMES.eventsCounter);
    const retries = events
      .filter((p) => p.attributes['event.name'] === 'retry' && String(p.attributes.policy).includes('flaky'))
      .reduce((sum, p) => sum + (p.value as number), 0);
    expect(retries - retriesBefore).toBe(2);
    const durations = await sdk.points(TELEMETRY_NAMES.attemptDuration);
    const successes = durations.find((p) => String(p.attributes.policy).includes('flaky') && p.attributes.outcome === 'success');
    expect((successes?.value as { count: number } | undefined)?.count).toBeGreaterThanOrEqual(1);

    const key = randomUUID();
    const route = 'POST /reports';
    const executedBefore = (valueOf(await sdk.points(TELEMETRY_NAMES.idempotencyRequests), { outcome: 'executed', policy: route }) as number) ?? 0;
    const replayedBefore = (valueOf(await sdk.points(TELEMETRY_NAMES.idempotencyRequests), { outcome: 'replayed', policy: route }) as number) ?? 0;
    await request(app.getHttpServer()).post('/reports').set('idempotency-key', key).send({ title: 'a' }).expect(201);
    await request(app.getHttpServer()).post('/reports').set('idempotency-key', key).send({ title: 'a' }).expect(201);
    await request(app.getHttpServer()).post('/reports').set('idempotency-key', key).send({ title: 'other' }).expect(422);
    const requests = await sdk.points(TELEMETRY_NAMES.idempotencyRequests);
    expect(valueOf(requests, { outcome: 'executed', policy: route })).toBe(executedBefore + 1);
    expect(valueOf(requests, { outcome: 'replayed', policy: route })).toBe(replayedBefore + 1);
    expect(valueOf(requests, { outcome: 'mismatch', policy: route })).toBeGreaterThanOrEqual(1);
  });

  it('reports breaker states on the resilience.circuit.state gauge', async () => {
    const breakers = app.get(CircuitBreakerService);
    expect(valueOf(await sdk.points(TELEMETRY_NAMES.circuitState), { policy: 'telemetry-model' })).toBe(0);
    breakers.isolate('telemetry-model');
    try {
      expect(valueOf(await sdk.points(TELEMETRY_NAMES.circuitState), { policy: 'telemetry-model' })).toBe(3);
    } finally {
      breakers.reset('telemetry-model');
    }
  });
});
