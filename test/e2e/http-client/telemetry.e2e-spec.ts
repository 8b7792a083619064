import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { propagation, SpanKind, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { ResilienceModule, Timeout } from 'nest-resilience';
import { HTTP_CLIENT_TELEMETRY_NAMES, HttpClient, InjectHttpClient, isUndiciInstrumented, ResilientHttpModule } from 'nest-resilience/http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerTestSdk } from '../observability/otel-sdk.js';
import { createPinoApp, LogCapture } from '../observability/pino-capture.js';
import { platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

const sdk = registerTestSdk();
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
let upstream: Upstream;

beforeAll(async () => {
  // every odd request to a /flaky path fails with 503, so a call with one retry succeeds
  const seen = new Map<string, number>();
  upstream = await startUpstream((req) => {
    const n = (seen.get(req.path) ?? 0) + 1;
    seen.set(req.path, n);
    return req.path.startsWith('/flaky') && n % 2 === 1 ? { status: 503 } : { body: { ok: true } };
  });
});
afterAll(async () => {
  await upstream.close();
  await sdk.shutdown();
  propagation.disable();
});

describe('HTTP client semantic-convention spans, metrics and trace propagation', () => {
  it('records one CLIENT span per request, nested under the caller, with the trace context sent along', async () => {
    const client = new HttpClient('partner', { baseUrl: upstream.url, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 1 } } });
    const from = upstream.received.length;
    await sdk.tracer.startActiveSpan('caller', async (parent) => {
      await client.get('/flaky/1', { route: '/flaky/{id}' });
      parent.end();
    });
    await client.close();
    const caller = sdk.spans().find((span) => span.name === 'caller')!;
    const spans = sdk.spans().filter((span) => span.name === 'GET /flaky/{id}');
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(span.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
      expect(span.attributes).toMatchObject({ 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'url.template': '/flaky/{id}' });
    }
    expect(spans[0]!.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': '503' });
    expect(spans[0]!.attributes['http.request.resend_count']).toBeUndefined();
    expect(spans[1]!.attributes).toMatchObject({ 'http.response.status_code': 200, 'http.request.resend_count': 1 });
    const sent = upstream.received.slice(from).map((r) => String(r.headers.traceparent));
    expect(sent).toEqual(spans.map((span) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`));
  });

  it('records http.client.request.duration per request, by status and resend count', async () => {
    const points = await sdk.points(HTTP_CLIENT_TELEMETRY_NAMES.requestDuration);
    const counts = points.map((p) => ({ status: p.attributes['http.response.status_code'], resend: p.attributes['http.request.resend_count'], count: (p.value as { count: number }).count }));
    expect(counts).toEqual(expect.arrayContaining([{ status: 503, resend: undefined, count: 1 }, { status: 200, resend: 1, count: 1 }]));
  });

  it('leaves the span, the trace header and the metric to the OpenTelemetry undici instrumentation when it is registered', async () => {
    const instrumentation = new UndiciInstrumentation();
    instrumentation.setTracerProvider(trace.getTracerProvider());
    instrumentation.enable();
    try {
      expect(isUndiciInstrumented()).toBe(true);
      const client = new HttpClient('partner', { baseUrl: upstream.url });
      const spansBefore = sdk.spans().length;
      const from = upstream.received.length;
      await sdk.tracer.startActiveSpan('caller-2', async (parent) => {
        await client.get('/plain', { route: '/plain' });
        parent.end();
      });
      await client.close();
      const added = sdk.spans().slice(spansBefore);
      const clientSpans = added.filter((span) => span.kind === SpanKind.CLIENT);
      expect(clientSpans).toHaveLength(1);
      expect(clientSpans[0]!.name).not.toBe('GET /plain');
      expect(upstream.received.slice(from).map((r) => r.headers.traceparent)).toEqual([expect.stringContaining(clientSpans[0]!.spanContext().spanId)]);
    } finally {
      instrumentation.disable();
    }
    expect(isUndiciInstrumented()).toBe(false);
  });
});

@Controller('log')
class LogController {
  constructor(@InjectHttpClient('partner') private readonly partner: HttpClient) {}

  @Get()
  @Timeout(5_000)
  async call() {
    return (await this.partner.get('/flaky/log', { route: '/flaky/{id}' })).data;
  }
}

// nestjs-pino keeps one pino-http per process: one capture for both platforms
const capture = new LogCapture();

describe.each(platforms)('one structured log event per call on %s', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createPinoApp(platform, capture, {
      imports: [
        ResilienceModule.forRoot(),
        ResilientHttpModule.register({ clients: { partner: { baseUrl: upstream.url, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 1 } } } } }),
      ],
      controllers: [LogController],
    });
  });
  afterAll(async () => {
    await app.close();
  });

  it('logs client, method, route template, status, attempts, latency, outcome and the request id once', async () => {
    capture.clear();
    const from = upstream.received.length;
    await request(app.getHttpServer()).get('/log').set('x-request-id', 'req-log-1').expect(200);
    const lines = capture.lines.filter((line) => line.context === 'HttpClient');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ event: 'http_call', client: 'partner', method: 'GET', route: '/flaky/{id}', status: 200, attempts: 2, outcome: 'success', requestId: 'req-log-1' });
    expect(typeof lines[0]!.durationMs).toBe('number');
    expect(upstream.received.slice(from).map((r) => r.headers['x-request-id'])).toEqual(['req-log-1', 'req-log-1']);
  });
});
