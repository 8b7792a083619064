import { context, metrics, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader, type DataPoint, type MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';

/** A pull reader: metrics are read on demand with `collect()`. */
export class ManualMetricReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** One data point of a metric, flattened for assertions. */
export interface Point {
  readonly attributes: Attributes;
  readonly value: unknown;
}

/**
 * A real OpenTelemetry SDK registered globally (context manager, tracer and meter providers) with
 * in-memory span export and a manual metric reader. `shutdown()` unregisters everything.
 */
export function registerTestSdk() {
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const spans = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
  trace.setGlobalTracerProvider(tracerProvider);
  const reader = new ManualMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);

  return {
    tracer: trace.getTracer('test'),
    /** Finished spans so far. */
    spans: (): ReadableSpan[] => spans.getFinishedSpans(),
    /** Current data points of the metric `name` (empty when it was never recorded). */
    async points(name: string): Promise<Point[]> {
      const { resourceMetrics } = await reader.collect();
      const metric: MetricData | undefined = resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .find((m) => m.descriptor.name === name);
      if (!metric) return [];
      return (metric.dataPoints as DataPoint<unknown>[]).map((p) => ({ attributes: p.attributes, value: p.value }));
    },
    async shutdown(): Promise<void> {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      trace.disable();
      metrics.disable();
      context.disable();
    },
  };
}

/** The value of the data point whose attributes include `match` (undefined when none). */
export function valueOf(points: Point[], match: Attributes): unknown {
  return points.find((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))?.value;
}
