import { context, metrics, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Registers the OpenTelemetry SDK for the whole process: call it before `NestFactory.create()`. */
export function registerOpenTelemetry(spanExporter: SpanExporter, metricReader: MetricReader) {
  // spans follow a request through `await`; without a context manager every span is a root
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const tracerProvider = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: spanExporter })] });
  trace.setGlobalTracerProvider(tracerProvider);
  const meterProvider = new MeterProvider({ readers: [metricReader] });
  metrics.setGlobalMeterProvider(meterProvider);
  return { tracerProvider, meterProvider }; // shutdown() both on exit: it flushes what is buffered
}

/** The active server span of each request, for apps without HTTP instrumentation (`consumer.apply(serverSpan).forRoutes('{*splat}')`). */
export function serverSpan(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  trace.getTracer('http-server').startActiveSpan(req.method ?? 'HTTP', { kind: SpanKind.SERVER }, (span) => {
    res.once('close', () => span.end());
    next();
  });
}
