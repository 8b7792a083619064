import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Module, type INestApplication, type MiddlewareConsumer, type NestModule, type Type } from '@nestjs/common';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { ResilienceModule, TELEMETRY_NAMES } from 'nest-resilience';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualMetricReader } from '../e2e/observability/otel-sdk.js';
import { ReportsController } from '../e2e/observability/reports.controller.js';
import { createApp, platforms, type Platform } from '../support/app.js';
import { registerOpenTelemetry, serverSpan } from '../../docs/snippets/observability/otel.js';

// The observability guide's set-up (docs/snippets/observability/otel.ts), registered before any app exists (as `node --import ./otel.js main.js` does).
const spans = new InMemorySpanExporter();
const reader = new ManualMetricReader();
const { tracerProvider, meterProvider } = registerOpenTelemetry(spans, reader);
afterAll(async () => {
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
});

@Module({ imports: [ResilienceModule.forRoot()], controllers: [ReportsController] })
class UntracedModule {}

@Module({ imports: [ResilienceModule.forRoot()], controllers: [ReportsController] })
class TracedModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(serverSpan).forRoutes('{*splat}');
  }
}

/** One retried request (two failures, then success) on a new app; the spans it left, flushed. */
async function retriedRequest(platform: Platform, module: Type) {
  const app: INestApplication = await createApp(platform, { imports: [module] });
  const requestId = `docs-otel-${platform}-${randomUUID()}`;
  try {
    await request(app.getHttpServer()).get('/reports/flaky').set('x-request-id', requestId).expect(200);
  } finally {
    await app.close();
  }
  await tracerProvider.forceFlush();
  const attempts = spans.getFinishedSpans().filter((span) => span.name === TELEMETRY_NAMES.attemptSpan && span.attributes['resilience.policy'] !== undefined);
  return { attempts: attempts.slice(-3), all: spans.getFinishedSpans() };
}

describe.each(platforms)("the observability guide's OpenTelemetry set-up (%s)", (platform) => {
  it('records attempt spans and metrics; retry events land on the active server span', async () => {
    spans.reset();
    const { attempts, all } = await retriedRequest(platform, TracedModule);
    expect(attempts.map((span) => span.attributes['resilience.attempt'])).toEqual([1, 2, 3]);
    // the server span: the parent of every attempt
    const server = all.find((span) => span.spanContext().spanId === attempts[0]!.parentSpanContext?.spanId);
    expect(server?.name).toBe('GET');
    expect(attempts.every((span) => span.parentSpanContext?.spanId === server!.spanContext().spanId)).toBe(true);
    expect(server!.events.filter((event) => event.name === 'resilience.retry')).toHaveLength(2);

    const { resourceMetrics } = await reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics.map((metric) => metric.descriptor.name));
    expect(names).toEqual(expect.arrayContaining(['resilience.events', 'resilience.attempt.duration']));
  });

  it('without an active server span the attempt spans are roots and the events are recorded on no span', async () => {
    spans.reset();
    const { attempts, all } = await retriedRequest(platform, UntracedModule);
    expect(attempts.map((span) => span.attributes['resilience.attempt'])).toEqual([1, 2, 3]);
    expect(attempts.every((span) => span.parentSpanContext === undefined)).toBe(true);
    expect(all.flatMap((span) => span.events).filter((event) => event.name.startsWith('resilience.'))).toEqual([]);
  });
});
