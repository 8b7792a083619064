import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type {
  Attributes,
  Counter,
  Histogram,
  MeterProvider,
  ObservableGauge,
  ObservableResult,
  Span,
} from '@opentelemetry/api';
import { ChaosControl, type ChaosRule } from '../core/fault-injection.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { currentResilienceStore } from '../context/resilience-context.js';
import { isInjectedFault } from '../core/injected-fault.js';
import { errorTypeOf, isChaosEvent, type ResilienceEvent, type ResilienceEventName } from '../core/events.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import {
  DEFAULT_INSTRUMENTATION_NAME,
  type ResilienceObservabilityOptions,
  type ResolvedTelemetryOptions,
} from './observability-options.interface.js';
import { ResilienceEvents } from './resilience-events.js';

type OpenTelemetryApi = typeof import('@opentelemetry/api');

/**
 * Names of every span, attribute and metric the library records, so dashboards and tests never
 * spell them by hand.
 * @publicApi
 */
export const TELEMETRY_NAMES = Object.freeze({
  /** Counter: one per event on the stream. Attributes `event.name`, `policy`, `outcome`. */
  eventsCounter: 'resilience.events',
  /** Histogram (ms): duration of each attempt. Attributes `policy`, `outcome`, `attempt.number`. */
  attemptDuration: 'resilience.attempt.duration',
  /** Observable gauge: breaker state (0 closed, 1 half-open, 2 open, 3 isolated). Attribute `policy`. */
  circuitState: 'resilience.circuit.state',
  /** Counter: idempotent requests by `outcome` (executed/replayed/conflict/mismatch/rejected) and `policy`. */
  idempotencyRequests: 'idempotency.requests',
  /** Child span around one attempt of an operation. */
  attemptSpan: 'resilience.attempt',
  /**
   * Observable gauge: the rate of each runtime chaos rule switched on (none while chaos is off or no
   * rule is on). Attributes `chaos.rule` (its id), `chaos.fault` (`exception`, `latency`, `http`), `chaos.target`.
   */
  chaosInjectionRate: 'resilience.chaos.injection_rate',
});

/**
 * Value reported by the `resilience.circuit.state` gauge for each breaker state.
 * @publicApi
 */
export const CIRCUIT_STATE_VALUES: Readonly<Record<string, number>> = Object.freeze({
  closed: 0,
  half_open: 1,
  open: 2,
  isolated: 3,
});

/**
 * The slice of a breaker snapshot the state gauge needs (`PolicyRegistry.circuitBreakers()` items).
 * @publicApi
 */
export interface CircuitStateSample {
  /** Policy key of the breaker. */
  readonly key: string;
  /** `closed`, `half_open`, `open` or `isolated`. */
  readonly state: string;
}

/**
 * Returns the current breakers, for the `resilience.circuit.state` gauge.
 * @publicApi
 */
export type CircuitStateSource = () => readonly CircuitStateSample[];

/** Outcome label of events that carry none (`resilience.events` `outcome` attribute). */
const DEFAULT_OUTCOMES: Readonly<Record<ResilienceEventName, string>> = {
  retry: 'retried',
  give_up: 'failure',
  attempt_timeout: 'timeout',
  deadline_exceeded: 'timeout',
  attempt_end: 'unknown',
  budget_exhausted: 'rejected',
  breaker_opened: 'open',
  breaker_state_loaded: 'open',
  breaker_half_opened: 'half_open',
  breaker_closed: 'closed',
  breaker_rejected: 'rejected',
  bulkhead_rejected: 'rejected',
  rate_limited: 'rejected',
  fallback_used: 'fallback',
  idempotency_executed: 'executed',
  idempotency_replayed: 'replayed',
  idempotency_conflict: 'conflict',
  idempotency_mismatch: 'mismatch',
  idempotency_rejected: 'rejected',
  idempotency_released: 'released',
  idempotency_takeover: 'takeover',
  idempotency_lock_lost: 'lock_lost',
  idempotency_store_error: 'store_error',
  idempotency_evicted: 'evicted',
  idempotency_response_not_kept: 'not_kept',
  shared_state_unavailable: 'unavailable',
  shared_state_recovered: 'recovered',
  fault_injected: 'injected',
  options_reloaded: 'reloaded',
  options_reload_refused: 'refused',
};

/** Events counted by `idempotency.requests`, each a terminal outcome of one idempotent request. */
const IDEMPOTENCY_OUTCOMES: ReadonlySet<ResilienceEventName> = new Set([
  'idempotency_executed',
  'idempotency_replayed',
  'idempotency_conflict',
  'idempotency_mismatch',
  'idempotency_rejected',
]);

const DURATION_BUCKETS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];

// `@opentelemetry/api` is an optional peer: it is loaded lazily so that an app without it still
// starts, and every telemetry path is a no-op until (and unless) it has loaded.
let otel: OpenTelemetryApi | null | undefined;
let otelLoading: Promise<OpenTelemetryApi | null> | undefined;

/** Loads `@opentelemetry/api` once; resolves to `null` when it is not installed. @internal */
export function loadOpenTelemetryApi(): Promise<OpenTelemetryApi | null> {
  otelLoading ??= import('@opentelemetry/api').then(
    (api) => (otel = api),
    () => (otel = null),
  );
  return otelLoading;
}

/**
 * Applies the telemetry defaults to user options (missing or partial options are fine).
 * @internal
 */
export function resolveTelemetryOptions(options: ResilienceObservabilityOptions | undefined): ResolvedTelemetryOptions {
  const telemetry = options?.telemetry ?? {};
  return {
    enabled: telemetry.enabled ?? true,
    attemptSpans: telemetry.attemptSpans ?? true,
    meterName: telemetry.meterName ?? DEFAULT_INSTRUMENTATION_NAME,
    tracerName: telemetry.tracerName ?? DEFAULT_INSTRUMENTATION_NAME,
  };
}

/**
 * Runs one attempt of `policy` inside its own child span (`resilience.attempt`, attributes
 * `resilience.policy`, `resilience.attempt`, `http.request.resend_count` = `attempt - 1` on resends,
 * `resilience.outcome`, `error.type` on failure). The span is the active span while `fn` runs, so
 * spans started by the handler (HTTP clients, database drivers) nest under the attempt.
 * When no OpenTelemetry SDK is registered (or `@opentelemetry/api` is not installed) it simply
 * returns `fn()`. The result or error of `fn` is passed through unchanged.
 * @example
 * const result = await withAttemptSpan('ReportsController.create', context.attempt, () => next());
 * @publicApi
 */
export function withAttemptSpan<T>(
  policy: string,
  attempt: number,
  fn: () => Promise<T>,
  { tracerName = DEFAULT_INSTRUMENTATION_NAME }: { tracerName?: string } = {},
): Promise<T> {
  const api = otel;
  if (!api) {
    if (api === undefined) void loadOpenTelemetryApi();
    return fn();
  }
  // without a registered tracer every span is a no-op: skip the span and context bookkeeping
  if (!isTracingActive(api)) return fn();
  const attributes: Attributes = { 'resilience.policy': policy, 'resilience.attempt': attempt };
  // outside HTTP the attempt carries its context's attributes (rpc.method, messaging.system, …) instead
  const source = currentResilienceStore()?.request;
  if (source?.contextType !== undefined) Object.assign(attributes, source.info().attributes);
  else if (attempt > 1) attributes['http.request.resend_count'] = attempt - 1;
  return api.trace
    .getTracer(tracerName)
    .startActiveSpan(TELEMETRY_NAMES.attemptSpan, { attributes }, async (span): Promise<T> => {
      try {
        const value = await fn();
        span.setAttribute('resilience.outcome', 'success');
        return value;
      } catch (error) {
        const errorType = errorTypeOf(error) ?? 'unknown';
        span.setAttributes({ 'resilience.outcome': 'failure', 'error.type': errorType });
        if (isInjectedFault(error)) span.setAttribute('resilience.chaos', true);
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
        throw error;
      } finally {
        span.end();
      }
    });
}

/** The tracer provider the API falls back to when no SDK registered one. */
let noopTracerProvider: unknown;

/**
 * `@opentelemetry/api` once loaded (starting the load on first call): `undefined` while loading,
 * `null` when it is not installed. For other parts of the library that record telemetry.
 * @internal
 */
export function openTelemetryApi(): OpenTelemetryApi | null | undefined {
  if (otel === undefined) void loadOpenTelemetryApi();
  return otel;
}

/** Whether an SDK registered a tracer provider (spans are recorded somewhere). @internal */
export function isTracingActive(api: OpenTelemetryApi): boolean {
  const provider = api.trace.getTracerProvider();
  if (!(provider instanceof api.ProxyTracerProvider)) return true;
  noopTracerProvider ??= new api.ProxyTracerProvider().getDelegate();
  return provider.getDelegate() !== noopTracerProvider;
}

/** Whether an SDK registered a meter provider (metrics are recorded somewhere). @internal */
export function isMeteringActive(api: OpenTelemetryApi): boolean {
  const provider = api.metrics.getMeterProvider();
  if (provider !== meterProviderSeen) {
    meterProviderSeen = provider;
    // the API's fallback provider is not exported: recognise it by its class name (a miss only
    // costs speed); the answer is kept per provider, as reading a class name is slow
    meteringActive = provider.constructor?.name !== 'NoopMeterProvider';
  }
  return meteringActive;
}

/** The meter provider {@link isMeteringActive} last looked at, and its answer. */
let meterProviderSeen: unknown;
let meteringActive = false;

interface Instruments {
  readonly provider: MeterProvider;
  readonly events: Counter;
  readonly attemptDuration: Histogram;
  readonly idempotencyRequests: Counter;
  readonly circuitState: ObservableGauge;
  readonly chaosRates: ObservableGauge;
}

/**
 * Reports {@link ResilienceEvents} to OpenTelemetry through `@opentelemetry/api` only:
 * - on the active span: one span event per event (`resilience.<event>`) and the attributes
 *   `resilience.policy`, `resilience.event`, `resilience.outcome`, plus `http.request.resend_count`
 *   on retries;
 * - metrics `resilience.events`, `resilience.attempt.duration`, `resilience.circuit.state`,
 *   `idempotency.requests` (see {@link TELEMETRY_NAMES}).
 *
 * The library never registers an SDK: without one every call is a no-op and nothing throws.
 * Register your SDK before the Nest app is created (the usual `node --import ./otel.js main.js`);
 * a meter provider registered later is picked up on the next event.
 * @publicApi
 */
@Injectable()
export class ResilienceTelemetry implements OnModuleInit, OnModuleDestroy {
  private readonly options: ResolvedTelemetryOptions;
  private instruments?: Instruments;
  private unsubscribe?: () => void;
  private circuitSource?: CircuitStateSource;
  private readonly observeCircuits = (result: ObservableResult): void => this.reportCircuitStates(result);
  private readonly observeChaos = (result: ObservableResult): void => this.reportChaosRules(result);
  /** The chaos series reported at the last collection, by rule, fault and target. */
  private chaosSeries = new Map<string, Attributes>();

  constructor(
    private readonly events: ResilienceEvents,
    @Optional() @Inject(RESOLVED_RESILIENCE_OPTIONS) options?: ResilienceObservabilityOptions,
    @Optional() registry?: PolicyRegistry,
    @Optional() @Inject(ChaosControl) private readonly chaos?: ChaosControl | null,
  ) {
    this.options = resolveTelemetryOptions(options);
    if (registry) this.circuitSource = () => registry.circuitBreakers();
  }

  /** Loads `@opentelemetry/api` (if installed) and subscribes to the event stream. */
  async onModuleInit(): Promise<void> {
    if (!this.options.enabled || this.unsubscribe) return;
    const api = await loadOpenTelemetryApi();
    if (!api) return;
    this.currentInstruments(api);
    this.unsubscribe = this.events.subscribe((event) => this.record(event), { wants: (event) => this.wants(event) });
  }

  /** Unsubscribes and detaches the gauge callback. */
  onModuleDestroy(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.instruments?.circuitState.removeCallback(this.observeCircuits);
    this.instruments?.chaosRates.removeCallback(this.observeChaos);
    this.instruments = undefined;
  }

  /** Uses `source` for the `resilience.circuit.state` gauge (default: every breaker of the application's `PolicyRegistry`). */
  setCircuitStateSource(source: CircuitStateSource): void {
    this.circuitSource = source;
  }

  /**
   * {@link withAttemptSpan} with this module's settings: a plain `fn()` when telemetry or
   * `attemptSpans` is disabled.
   */
  withAttemptSpan<T>(policy: string, attempt: number, fn: () => Promise<T>): Promise<T> {
    if (!this.options.enabled || !this.options.attemptSpans) return fn();
    return withAttemptSpan(policy, attempt, fn, { tracerName: this.options.tracerName });
  }

  /** Whether {@link withAttemptSpan} would record a span now (a tracer provider is registered). */
  tracesAttempts(): boolean {
    if (!this.options.enabled || !this.options.attemptSpans) return false;
    const api = otel;
    if (!api) {
      if (api === undefined) void loadOpenTelemetryApi();
      return false;
    }
    return isTracingActive(api);
  }

  /**
   * Whether this consumer needs events named `event` now: none before the OpenTelemetry API is
   * loaded or while neither a tracer nor a meter provider is registered (there is nowhere to
   * record them), and `attempt_end` only while a meter provider is (it only feeds the duration
   * histogram).
   */
  wants(event: ResilienceEventName): boolean {
    const api = otel;
    if (!api) {
      if (api === undefined) void loadOpenTelemetryApi();
      return false;
    }
    if (event === 'attempt_end') return isMeteringActive(api);
    return isMeteringActive(api) || isTracingActive(api);
  }

  /** Records one event on the active span and in the metrics. Never throws. */
  record(event: ResilienceEvent): void {
    const api = otel;
    if (!api) return;
    try {
      this.annotateActiveSpan(api, event);
      this.recordMetrics(api, event);
    } catch {
      // telemetry must never break the request path
    }
  }

  private annotateActiveSpan(api: OpenTelemetryApi, event: ResilienceEvent): void {
    // attempt_end is covered by the attempt spans and the duration histogram
    if (event.event === 'attempt_end') return;
    const span: Span | undefined = api.trace.getActiveSpan();
    if (!span || !span.isRecording()) return;
    const outcome = outcomeOf(event);
    span.addEvent(`resilience.${event.event}`, eventAttributes(event, outcome));
    const attributes: Attributes = {
      'resilience.policy': event.policy,
      'resilience.event': event.event,
      'resilience.outcome': outcome,
    };
    if (isChaosEvent(event)) attributes['resilience.chaos'] = true;
    if (event.attributes !== undefined) Object.assign(attributes, event.attributes);
    // `attempt` of a retry event is the attempt that failed: the next one is resend number `attempt`
    else if (event.event === 'retry' && event.attempt !== undefined) attributes['http.request.resend_count'] = event.attempt;
    span.setAttributes(attributes);
  }

  private recordMetrics(api: OpenTelemetryApi, event: ResilienceEvent): void {
    const instruments = this.currentInstruments(api);
    const outcome = outcomeOf(event);
    const chaos = isChaosEvent(event);
    // only events a chaos rule caused carry the attribute: no new series for anything else
    instruments.events.add(1, chaos ? { 'event.name': event.event, policy: event.policy, outcome, 'resilience.chaos': true } : { 'event.name': event.event, policy: event.policy, outcome });
    if (event.event === 'attempt_end' && event.durationMs !== undefined) {
      const attributes: Attributes = { policy: event.policy, outcome };
      if (event.attempt !== undefined) attributes['attempt.number'] = event.attempt;
      if (chaos) attributes['resilience.chaos'] = true;
      instruments.attemptDuration.record(event.durationMs, attributes);
    }
    if (IDEMPOTENCY_OUTCOMES.has(event.event)) {
      // the request's outcome is the event itself (`idempotency_replayed` → `replayed`)
      instruments.idempotencyRequests.add(1, { outcome: DEFAULT_OUTCOMES[event.event], policy: event.policy });
    }
  }

  /** The instruments of the current global meter provider (re-created if it changed). */
  private currentInstruments(api: OpenTelemetryApi): Instruments {
    const provider = api.metrics.getMeterProvider();
    if (this.instruments?.provider === provider) return this.instruments;
    this.instruments?.circuitState.removeCallback(this.observeCircuits);
    this.instruments?.chaosRates.removeCallback(this.observeChaos);
    const meter = provider.getMeter(this.options.meterName);
    const circuitState = meter.createObservableGauge(TELEMETRY_NAMES.circuitState, {
      description: 'Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 isolated.',
    });
    circuitState.addCallback(this.observeCircuits);
    const chaosRates = meter.createObservableGauge(TELEMETRY_NAMES.chaosInjectionRate, {
      description: 'Injection rate of each runtime chaos rule switched on (fault injection).',
    });
    chaosRates.addCallback(this.observeChaos);
    this.instruments = {
      provider,
      circuitState,
      chaosRates,
      events: meter.createCounter(TELEMETRY_NAMES.eventsCounter, {
        description: 'Resilience events (retries, timeouts, breaker transitions, rejections, idempotency outcomes).',
      }),
      attemptDuration: meter.createHistogram(TELEMETRY_NAMES.attemptDuration, {
        description: 'Duration of each attempt of a resilience-wrapped operation.',
        unit: 'ms',
        advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
      }),
      idempotencyRequests: meter.createCounter(TELEMETRY_NAMES.idempotencyRequests, {
        description: 'Idempotent requests by outcome (executed, replayed, conflict, mismatch, rejected).',
      }),
    };
    return this.instruments;
  }

  private reportCircuitStates(result: ObservableResult): void {
    for (const breaker of this.circuitStates()) {
      const value = CIRCUIT_STATE_VALUES[breaker.state];
      if (value !== undefined) result.observe(value, { policy: breaker.key });
    }
  }

  private reportChaosRules(result: ObservableResult): void {
    const reported = new Map<string, Attributes>();
    for (const rule of this.chaos?.rules() ?? []) {
      if (!rule.enabled) continue;
      const attributes: Attributes = { 'chaos.rule': rule.id, 'chaos.fault': rule.fault.kind, 'chaos.target': describeChaosTarget(rule) };
      reported.set(JSON.stringify(attributes), attributes);
      result.observe(rule.rate, attributes);
    }
    // the SDK keeps repeating a series that is no longer observed: a rule switched off or removed is
    // reported once at 0, so "chaos left on" alerts resolve
    for (const [key, attributes] of this.chaosSeries) if (!reported.has(key)) result.observe(0, attributes);
    this.chaosSeries = reported;
  }

  private circuitStates(): readonly CircuitStateSample[] {
    try {
      return this.circuitSource?.() ?? [];
    } catch {
      return [];
    }
  }
}

/** `route GET /preview`, `httpClient model`: a rule's target as one attribute value. */
function describeChaosTarget(rule: ChaosRule): string {
  return Object.entries(rule.target)
    .map(([kind, value]) => `${kind} ${String(value)}`)
    .join(', ');
}

function outcomeOf(event: ResilienceEvent): string {
  return event.outcome ?? DEFAULT_OUTCOMES[event.event] ?? 'unknown';
}

function eventAttributes(event: ResilienceEvent, outcome: string): Attributes {
  const attributes: Attributes = { 'resilience.policy': event.policy, 'resilience.outcome': outcome };
  if (event.attempt !== undefined) attributes['resilience.attempt'] = event.attempt;
  if (event.delayMs !== undefined) attributes['resilience.delay_ms'] = event.delayMs;
  if (event.durationMs !== undefined) attributes['resilience.duration_ms'] = event.durationMs;
  if (event.errorType !== undefined) attributes['error.type'] = event.errorType;
  if (event.status !== undefined) attributes['resilience.status'] = event.status;
  if (event.from !== undefined) attributes['resilience.from_state'] = event.from;
  if (isChaosEvent(event)) attributes['resilience.chaos'] = true;
  return attributes;
}
