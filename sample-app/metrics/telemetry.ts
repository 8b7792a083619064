import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

let exporter: PrometheusExporter | undefined;

/**
 * Registers the OpenTelemetry metrics SDK for this process, read by a Prometheus exporter that
 * `GET /metrics` serves (no separate port). The library only talks to `@opentelemetry/api`; wiring
 * an SDK is the application's job. Idempotent: the global provider can be set once per process.
 */
export function registerMetrics(): PrometheusExporter {
  if (exporter) return exporter;
  exporter = new PrometheusExporter({ preventServerStart: true });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }));
  return exporter;
}
