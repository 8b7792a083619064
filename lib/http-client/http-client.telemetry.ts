import { channel } from 'node:diagnostics_channel';
import type { Attributes, Histogram, MeterProvider } from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import { DEFAULT_INSTRUMENTATION_NAME } from '../observability/observability-options.interface.js';
import { isMeteringActive, isTracingActive, loadOpenTelemetryApi, openTelemetryApi } from '../observability/resilience-telemetry.js';

/**
 * Names of the telemetry an `HttpClient` records (OpenTelemetry HTTP client semantic conventions).
 * @publicApi
 */
export const HTTP_CLIENT_TELEMETRY_NAMES = Object.freeze({
  /** Histogram (s): duration of each request sent (hedges and retries each count). */
  requestDuration: 'http.client.request.duration',
  /** Span and metric attribute: how many requests of the same call were sent before this one. */
  resendCount: 'http.request.resend_count',
  /** diagnostics_channel the OpenTelemetry undici instrumentation subscribes to. */
  undiciRequestChannel: 'undici:request:create',
});

/** Bucket boundaries (s) the semantic conventions advise for `http.client.request.duration`. */
const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

// `@opentelemetry/api` is an optional peer, loaded asynchronously: start now, so it is there by the
// time the first call is made (the Nest module also waits for it before the app serves)
void loadOpenTelemetryApi();

const undiciRequests = channel(HTTP_CLIENT_TELEMETRY_NAMES.undiciRequestChannel);

/**
 * Whether something already instruments undici (the OpenTelemetry undici instrumentation, or any
 * APM agent, subscribes to its `undici:request:create` diagnostics channel): it then makes the
 * client span, injects the trace context and records `http.client.request.duration` itself, so the
 * client records none of them (no double spans or double counts).
 * @publicApi
 */
export function isUndiciInstrumented(): boolean {
  return undiciRequests.hasSubscribers;
}

/** What is known about one request's call when it is sent. @internal */
export interface RequestTelemetryInput {
  readonly method: string;
  /** The full URL called. */
  readonly href: string;
  /** The parsed origin called (host, port, scheme, credentials). */
  readonly target: URL;
  /** Route template, for the span name and `url.template`. */
  readonly route: string;
}

/** Ends the telemetry of one request. @internal */
export type EndRequestTelemetry = (status: number | undefined, errorType: string | undefined) => void;

/** Settings of the client's telemetry. @internal */
export interface HttpClientTelemetryOptions {
  readonly enabled: boolean;
  readonly tracerName: string;
  readonly meterName: string;
  /** Whether to inject the trace context into outgoing headers. */
  readonly propagate: boolean;
}

let histogram: { provider: MeterProvider; meterName: string; instrument: Histogram } | undefined;

function durationHistogram(provider: MeterProvider, meterName: string): Histogram {
  if (histogram?.provider === provider && histogram.meterName === meterName) return histogram.instrument;
  const instrument = provider.getMeter(meterName).createHistogram(HTTP_CLIENT_TELEMETRY_NAMES.requestDuration, {
    description: 'Duration of HTTP client requests.',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  histogram = { provider, meterName, instrument };
  return instrument;
}

/**
 * Starts the telemetry of one request: a CLIENT span (`{method} {route}`) with the semantic
 * convention attributes, the trace context injected into `headers`, and on end one
 * `http.client.request.duration` sample. Does nothing without `@opentelemetry/api`, and leaves
 * everything to the undici instrumentation when one is registered. Returns the function that ends
 * it, or `undefined` when there is nothing to end (no span, no metric).
 * @internal
 */
export function startRequestTelemetry(
  input: RequestTelemetryInput,
  /** Requests of the same call sent before this one. */
  resendCount: number,
  /** Client name, as `nest_resilience.http.client`. */
  client: string,
  headers: Record<string, string>,
  options: HttpClientTelemetryOptions,
  clock: Clock,
): EndRequestTelemetry | undefined {
  if (!options.enabled) return undefined;
  const api = openTelemetryApi();
  if (!api || isUndiciInstrumented()) return undefined;
  const tracing = isTracingActive(api);
  const metering = isMeteringActive(api);
  if (!tracing && !metering) {
    // nothing records a span or a sample: only the propagators (baggage, a context some other
    // instrumentation made active) may still have something to send
    if (options.propagate) api.propagation.inject(api.context.active(), headers);
    return undefined;
  }
  const attributes: Attributes = {
    'http.request.method': input.method,
    'server.address': input.target.hostname,
    'server.port': Number(input.target.port) || (input.target.protocol === 'https:' ? 443 : 80),
    'url.full': input.target.username === '' && input.target.password === '' ? input.href : redactedUrl(new URL(input.href)),
    'url.template': input.route,
    'nest_resilience.http.client': client,
  };
  if (resendCount > 0) attributes[HTTP_CLIENT_TELEMETRY_NAMES.resendCount] = resendCount;
  const active = api.context.active();
  const span = tracing
    ? api.trace.getTracer(options.tracerName).startSpan(`${input.method} ${input.route}`, { kind: api.SpanKind.CLIENT, attributes }, active)
    : undefined;
  if (options.propagate) api.propagation.inject(span ? api.trace.setSpan(active, span) : active, headers);
  const started = clock.now();
  return (status, errorType) => {
    try {
      if (span) {
        if (status !== undefined) span.setAttribute('http.response.status_code', status);
        if (errorType !== undefined) {
          span.setAttribute('error.type', errorType);
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
        }
        span.end();
      }
      if (metering) {
        const metricAttributes: Attributes = {
          'http.request.method': input.method,
          'server.address': attributes['server.address'],
          'server.port': attributes['server.port'],
          'url.template': input.route,
        };
        if (status !== undefined) metricAttributes['http.response.status_code'] = status;
        if (errorType !== undefined) metricAttributes['error.type'] = errorType;
        if (resendCount > 0) metricAttributes[HTTP_CLIENT_TELEMETRY_NAMES.resendCount] = resendCount;
        durationHistogram(api.metrics.getMeterProvider(), options.meterName).record((clock.now() - started) / 1000, metricAttributes);
      }
    } catch {
      // telemetry must never break a call
    }
  };
}

/** `url.full` without credentials (semantic conventions: never record them). */
function redactedUrl(url: URL): string {
  url.username = 'REDACTED';
  url.password = 'REDACTED';
  return url.href;
}

/** Telemetry settings from the module's `telemetry` options. @internal */
export function httpClientTelemetryOptions(
  telemetry: { readonly enabled?: boolean; readonly tracerName?: string; readonly meterName?: string } | undefined,
  propagate: boolean,
): HttpClientTelemetryOptions {
  return {
    enabled: telemetry?.enabled ?? true,
    tracerName: telemetry?.tracerName ?? DEFAULT_INSTRUMENTATION_NAME,
    meterName: telemetry?.meterName ?? DEFAULT_INSTRUMENTATION_NAME,
    propagate,
  };
}
