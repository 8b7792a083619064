import 'reflect-metadata';
import { Test, type TestingModule } from '@nestjs/testing';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerTestSdk, valueOf } from '../../e2e/observability/otel-sdk.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../../../lib/resilience.constants.js';
import type { ResilienceObservabilityOptions } from '../../../lib/observability/observability-options.interface.js';
import { ResilienceEvents } from '../../../lib/observability/resilience-events.js';
import { ResilienceTelemetry, TELEMETRY_NAMES, withAttemptSpan } from '../../../lib/observability/resilience-telemetry.js';

let sdk: ReturnType<typeof registerTestSdk>;
let moduleRef: TestingModule | undefined;

beforeAll(() => {
  sdk = registerTestSdk();
});
afterAll(() => sdk.shutdown());
afterEach(async () => {
  await moduleRef?.close();
  moduleRef = undefined;
});

async function setup(options?: ResilienceObservabilityOptions) {
  moduleRef = await Test.createTestingModule({
    providers: [
      ResilienceEvents,
      ResilienceTelemetry,
      ...(options ? [{ provide: RESOLVED_RESILIENCE_OPTIONS, useValue: options }] : []),
    ],
  }).compile();
  await moduleRef.init();
  return { events: moduleRef.get(ResilienceEvents), telemetry: moduleRef.get(ResilienceTelemetry) };
}

/** Runs `fn` inside a fresh active parent span and returns that span's id. */
async function inParentSpan(fn: () => Promise<void>): Promise<string> {
  return sdk.tracer.startActiveSpan(`parent-${Math.random()}`, async (span) => {
    try {
      await fn();
    } finally {
      span.end();
    }
    return span.spanContext().spanId;
  });
}

describe('withAttemptSpan (real SDK)', () => {
  it('creates one child span per attempt with http.request.resend_count on resends', async () => {
    await setup();
    let innerParent: string | undefined;
    const parentId = await inParentSpan(async () => {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const result = await withAttemptSpan('Reports.create', attempt, async () => {
          // a span started by the handler nests under the attempt
          trace.getTracer('handler').startActiveSpan('db.query', (child) => {
            innerParent = (child as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId;
            child.end();
          });
          if (attempt < 3) throw new TypeError('fetch failed');
          return 'ok';
        }).catch(() => 'failed');
        expect(result).toBe(attempt < 3 ? 'failed' : 'ok');
      }
    });
    const attempts = sdk.spans().filter((s) => s.name === TELEMETRY_NAMES.attemptSpan && s.parentSpanContext?.spanId === parentId);
    expect(attempts.map((s) => s.attributes)).toEqual([
      { 'resilience.policy': 'Reports.create', 'resilience.attempt': 1, 'resilience.outcome': 'failure', 'error.type': 'TypeError' },
      {
        'resilience.policy': 'Reports.create',
        'resilience.attempt': 2,
        'http.request.resend_count': 1,
        'resilience.outcome': 'failure',
        'error.type': 'TypeError',
      },
      { 'resilience.policy': 'Reports.create', 'resilience.attempt': 3, 'http.request.resend_count': 2, 'resilience.outcome': 'success' },
    ]);
    expect(attempts.map((s) => s.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
    expect(innerParent).toBe(attempts[2]!.spanContext().spanId);
  });

  it('passes the result and the error of the attempt through unchanged', async () => {
    await setup();
    const error = new RangeError('boom');
    await expect(withAttemptSpan('p', 1, async () => 42)).resolves.toBe(42);
    await expect(withAttemptSpan('p', 2, () => Promise.reject(error))).rejects.toBe(error);
  });

  it('creates no attempt span when attemptSpans is false', async () => {
    const { telemetry } = await setup({ telemetry: { attemptSpans: false } });
    const before = sdk.spans().length;
    await expect(telemetry.withAttemptSpan('p', 1, async () => 'v')).resolves.toBe('v');
    expect(sdk.spans().length).toBe(before);
  });
});

describe('ResilienceTelemetry events (real SDK)', () => {
  it('adds span events and resilience attributes to the active span', async () => {
    const { events } = await setup();
    const parentId = await inParentSpan(async () => {
      events.emit({ event: 'retry', policy: 'Reports.create', attempt: 1, delayMs: 100, errorType: 'UpstreamHttpError', status: 503 });
      events.emit({ event: 'retry', policy: 'Reports.create', attempt: 2, delayMs: 200, errorType: 'UpstreamHttpError' });
    });
    const parent = sdk.spans().find((s) => s.spanContext().spanId === parentId)!;
    expect(parent.events.map((e) => e.name)).toEqual(['resilience.retry', 'resilience.retry']);
    expect(parent.events[0]!.attributes).toEqual({
      'resilience.policy': 'Reports.create',
      'resilience.outcome': 'retried',
      'resilience.attempt': 1,
      'resilience.delay_ms': 100,
      'error.type': 'UpstreamHttpError',
      'resilience.status': 503,
    });
    expect(parent.attributes).toEqual({
      'resilience.policy': 'Reports.create',
      'resilience.event': 'retry',
      'resilience.outcome': 'retried',
      'http.request.resend_count': 2,
    });
  });

  it('counts every event by name, policy and outcome, and idempotent requests by outcome', async () => {
    const { events } = await setup();
    const policy = `P${Math.random()}`;
    events.emit({ event: 'retry', policy, attempt: 1 });
    events.emit({ event: 'retry', policy, attempt: 2 });
    events.emit({ event: 'give_up', policy, attempt: 3, outcome: 'failure' });
    events.emit({ event: 'idempotency_executed', policy, outcome: 'stored' });
    events.emit({ event: 'idempotency_replayed', policy });
    events.emit({ event: 'idempotency_replayed', policy });
    events.emit({ event: 'idempotency_conflict', policy });
    events.emit({ event: 'idempotency_released', policy });

    const counted = await sdk.points(TELEMETRY_NAMES.eventsCounter);
    expect(valueOf(counted, { 'event.name': 'retry', policy, outcome: 'retried' })).toBe(2);
    expect(valueOf(counted, { 'event.name': 'give_up', policy, outcome: 'failure' })).toBe(1);
    expect(valueOf(counted, { 'event.name': 'idempotency_released', policy })).toBe(1);

    const requests = await sdk.points(TELEMETRY_NAMES.idempotencyRequests);
    expect(valueOf(requests, { outcome: 'executed', policy })).toBe(1);
    expect(valueOf(requests, { outcome: 'replayed', policy })).toBe(2);
    expect(valueOf(requests, { outcome: 'conflict', policy })).toBe(1);
    // released is not a request outcome: the retry that follows is counted instead
    expect(valueOf(requests, { outcome: 'released', policy })).toBeUndefined();
  });

  it('records attempt durations from attempt_end in a histogram', async () => {
    const { events } = await setup();
    const policy = `P${Math.random()}`;
    events.emit({ event: 'attempt_end', policy, attempt: 1, durationMs: 30, outcome: 'failure' });
    events.emit({ event: 'attempt_end', policy, attempt: 2, durationMs: 12, outcome: 'success' });
    const points = await sdk.points(TELEMETRY_NAMES.attemptDuration);
    const failure = valueOf(points, { policy, outcome: 'failure', 'attempt.number': 1 }) as { count: number; sum: number };
    const success = valueOf(points, { policy, outcome: 'success', 'attempt.number': 2 }) as { count: number; sum: number };
    expect([failure.count, failure.sum]).toEqual([1, 30]);
    expect([success.count, success.sum]).toEqual([1, 12]);
  });

  it('reports breaker states on the resilience.circuit.state gauge', async () => {
    const { telemetry } = await setup();
    telemetry.setCircuitStateSource(() => [
      { key: 'Model', state: 'open' },
      { key: 'Search', state: 'closed' },
      { key: 'Billing', state: 'half_open' },
      { key: 'Legacy', state: 'isolated' },
    ]);
    const points = await sdk.points(TELEMETRY_NAMES.circuitState);
    expect(valueOf(points, { policy: 'Model' })).toBe(2);
    expect(valueOf(points, { policy: 'Search' })).toBe(0);
    expect(valueOf(points, { policy: 'Billing' })).toBe(1);
    expect(valueOf(points, { policy: 'Legacy' })).toBe(3);
  });

  it('keeps one gauge series per breaker as its state changes', async () => {
    const { telemetry } = await setup();
    let state = 'closed';
    telemetry.setCircuitStateSource(() => [{ key: 'Flapping', state }]);
    expect(valueOf(await sdk.points(TELEMETRY_NAMES.circuitState), { policy: 'Flapping' })).toBe(0);
    state = 'open';
    const points = (await sdk.points(TELEMETRY_NAMES.circuitState)).filter((p) => p.attributes.policy === 'Flapping');
    expect(points.map((p) => p.value)).toEqual([2]);
  });

  it('records nothing when telemetry is disabled', async () => {
    const { events } = await setup({ telemetry: { enabled: false } });
    const policy = `P${Math.random()}`;
    const parentId = await inParentSpan(async () => events.emit({ event: 'retry', policy, attempt: 1 }));
    expect(sdk.spans().find((s) => s.spanContext().spanId === parentId)!.events).toEqual([]);
    expect(valueOf(await sdk.points(TELEMETRY_NAMES.eventsCounter), { policy })).toBeUndefined();
  });

  it('stops recording when the module is destroyed', async () => {
    const { events } = await setup();
    await moduleRef!.close();
    moduleRef = undefined;
    const policy = `P${Math.random()}`;
    events.emit({ event: 'retry', policy, attempt: 1 });
    expect(valueOf(await sdk.points(TELEMETRY_NAMES.eventsCounter), { policy })).toBeUndefined();
  });
});
