import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ResilienceEvent } from '../../../lib/core/events.js';
import { ResilienceEvents } from '../../../lib/observability/resilience-events.js';

class ManualMetricReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const everyKind: ResilienceEvent[] = [
  { event: 'retry', policy: 'p', attempt: 1, delayMs: 10, errorType: 'TypeError' },
  { event: 'attempt_end', policy: 'p', attempt: 1, durationMs: 4, outcome: 'failure' },
  { event: 'give_up', policy: 'p', attempt: 3 },
  { event: 'breaker_opened', policy: 'p', from: 'closed' },
  { event: 'idempotency_replayed', policy: 'POST /x', key: 'k' },
];

afterEach(() => {
  vi.doUnmock('@opentelemetry/api');
  vi.resetModules();
});

describe('ResilienceTelemetry without an OpenTelemetry SDK', () => {
  it('records nothing and throws nothing', async () => {
    const { ResilienceTelemetry, withAttemptSpan } = await import('../../../lib/observability/resilience-telemetry.js');
    // providers that exist but were never registered globally: the library must not find or use them
    const spans = new InMemorySpanExporter();
    const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
    const reader = new ManualMetricReader();
    const meterProvider = new MeterProvider({ readers: [reader] });

    const moduleRef = await Test.createTestingModule({ providers: [ResilienceEvents, ResilienceTelemetry] }).compile();
    await moduleRef.init();
    const events = moduleRef.get(ResilienceEvents);
    const telemetry = moduleRef.get(ResilienceTelemetry);
    const record = vi.spyOn(telemetry, 'record');

    expect(trace.getActiveSpan()).toBeUndefined();
    for (const event of everyKind) expect(() => events.emit(event)).not.toThrow();
    expect(record).toHaveBeenCalledTimes(everyKind.length);
    await expect(withAttemptSpan('p', 2, async () => 'value')).resolves.toBe('value');
    const error = new Error('attempt failed');
    await expect(withAttemptSpan('p', 1, () => Promise.reject(error))).rejects.toBe(error);
    await expect(telemetry.withAttemptSpan('p', 1, async () => 7)).resolves.toBe(7);

    expect(spans.getFinishedSpans()).toEqual([]);
    const { resourceMetrics } = await reader.collect();
    expect(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)).toEqual([]);
    // no global provider was registered by the library
    expect(metrics.getMeterProvider()).not.toBe(meterProvider);
    expect(trace.getTracerProvider().getTracer('x').startSpan('y').isRecording()).toBe(false);
    await moduleRef.close();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  it('starts and runs when @opentelemetry/api is not installed', async () => {
    vi.resetModules();
    vi.doMock('@opentelemetry/api', () => {
      throw new Error("Cannot find package '@opentelemetry/api'");
    });
    const { ResilienceTelemetry, withAttemptSpan } = await import('../../../lib/observability/resilience-telemetry.js');
    const { ResilienceEvents: Events } = await import('../../../lib/observability/resilience-events.js');
    const moduleRef = await Test.createTestingModule({ providers: [Events, ResilienceTelemetry] }).compile();
    await moduleRef.init();
    const events = moduleRef.get(Events);
    for (const event of everyKind) expect(() => events.emit(event)).not.toThrow();
    await expect(withAttemptSpan('p', 2, async () => 'value')).resolves.toBe('value');
    await expect(moduleRef.get(ResilienceTelemetry).withAttemptSpan('p', 1, async () => 1)).resolves.toBe(1);
    await moduleRef.close();
  });
});
