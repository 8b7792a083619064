import type { ResilienceEventName } from '../core/events.js';

/**
 * A Nest `Logger` method an event is written with, or `false` to never log it.
 * With nestjs-pino, `verbose` maps to pino `trace` and `log` to `info`.
 * @publicApi
 */
export type ResilienceLogLevel = 'verbose' | 'debug' | 'log' | 'warn' | 'error' | false;

/**
 * How resilience events are written to the application log (through Nest's `Logger`, context
 * `'Resilience'`, one structured object per event so nestjs-pino renders one JSON line).
 * @publicApi
 */
export interface ResilienceLoggingOptions {
  /** Whether events are logged at all. @default true */
  enabled?: boolean;
  /**
   * Write idempotency keys to the log as they arrive in events. When `false` the logger only
   * writes keys that are already hashed (`sha256:` + hex) and hashes any other key itself, so a
   * client's raw `Idempotency-Key` never reaches the log.
   * @default `idempotency.logKeys`, else false
   */
  logKeys?: boolean;
  /**
   * Per-event log level overrides, merged over {@link DEFAULT_EVENT_LOG_LEVELS}.
   * @default {}
   * @example { levels: { retry: 'debug', breaker_rejected: 'warn' } }
   */
  levels?: Partial<Record<ResilienceEventName, ResilienceLogLevel>>;
}

/**
 * What the library reports to OpenTelemetry through `@opentelemetry/api`. Nothing is recorded
 * (and nothing fails) when the application registers no OpenTelemetry SDK.
 * @publicApi
 */
export interface ResilienceTelemetryOptions {
  /** Whether span events, attributes and metrics are recorded. @default true */
  enabled?: boolean;
  /** Whether each attempt of a retried operation gets its own child span. @default true */
  attemptSpans?: boolean;
  /** Instrumentation scope name of the meter. @default 'nest-resilience' */
  meterName?: string;
  /** Instrumentation scope name of the tracer. @default 'nest-resilience' */
  tracerName?: string;
}

/**
 * Observability settings; `ResilienceModule.forRoot({ logging, telemetry })`.
 * @publicApi
 */
export interface ResilienceObservabilityOptions {
  /** Structured logs. @default { enabled: true, logKeys: false, levels: {} } */
  logging?: ResilienceLoggingOptions;
  /** OpenTelemetry spans and metrics. @default { enabled: true, attemptSpans: true } */
  telemetry?: ResilienceTelemetryOptions;
}

/**
 * {@link ResilienceLoggingOptions} with every default applied.
 * @internal
 */
export interface ResolvedLoggingOptions {
  readonly enabled: boolean;
  readonly logKeys: boolean;
  readonly levels: Readonly<Record<ResilienceEventName, ResilienceLogLevel>>;
}

/**
 * {@link ResilienceTelemetryOptions} with every default applied.
 * @internal
 */
export interface ResolvedTelemetryOptions {
  readonly enabled: boolean;
  readonly attemptSpans: boolean;
  readonly meterName: string;
  readonly tracerName: string;
}

/**
 * Instrumentation scope name used for the tracer and the meter unless configured.
 * @publicApi
 */
export const DEFAULT_INSTRUMENTATION_NAME = 'nest-resilience';
