import 'reflect-metadata';
import { Logger, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { ResilienceEvent } from '../../../lib/core/events.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../../../lib/resilience.constants.js';
import type { ResilienceObservabilityOptions } from '../../../lib/observability/observability-options.interface.js';
import { ResilienceEvents } from '../../../lib/observability/resilience-events.js';
import { DEFAULT_EVENT_LOG_LEVELS, ResilienceLogger, redactKey, toLogRecord } from '../../../lib/observability/resilience-logger.js';

/** Records every call Nest's Logger forwards to the application logger. */
class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: unknown; context: unknown }> = [];
  log(message: unknown, ...rest: unknown[]) { this.push('log', message, rest); }
  warn(message: unknown, ...rest: unknown[]) { this.push('warn', message, rest); }
  error(message: unknown, ...rest: unknown[]) { this.push('error', message, rest); }
  debug(message: unknown, ...rest: unknown[]) { this.push('debug', message, rest); }
  verbose(message: unknown, ...rest: unknown[]) { this.push('verbose', message, rest); }
  // Nest passes the context last (error() also passes an empty stack before it)
  private push(level: string, message: unknown, rest: unknown[]) {
    this.lines.push({ level, message, context: rest.at(-1) });
  }
}

async function setup(options?: ResilienceObservabilityOptions) {
  const capture = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    providers: [
      ResilienceEvents,
      ResilienceLogger,
      ...(options ? [{ provide: RESOLVED_RESILIENCE_OPTIONS, useValue: options }] : []),
    ],
  }).compile();
  moduleRef.useLogger(capture);
  await moduleRef.init();
  return { moduleRef, capture, events: moduleRef.get(ResilienceEvents) };
}

const retry: ResilienceEvent = {
  event: 'retry',
  policy: 'Reports.create',
  attempt: 1,
  delayMs: 120,
  errorType: 'UpstreamHttpError',
  status: 503,
  requestId: 'req-1',
  route: 'POST /reports',
  error: new Error('secret connection string in here'),
};

describe('toLogRecord', () => {
  it('writes a sentence and the event fields, never the raw error, and drops absent fields', () => {
    const record = toLogRecord(retry, { logKeys: false });
    expect(record).toEqual({
      msg: 'Attempt 1 of Reports.create failed (UpstreamHttpError 503); retrying in 120 ms',
      event: 'retry',
      requestId: 'req-1',
      route: 'POST /reports',
      policy: 'Reports.create',
      attempt: 1,
      delayMs: 120,
      errorType: 'UpstreamHttpError',
      status: 503,
    });
    expect(JSON.stringify(record)).not.toContain('secret');
  });

  it('hashes a raw idempotency key unless logKeys is set', () => {
    const event: ResilienceEvent = { event: 'idempotency_replayed', policy: 'POST /reports', key: 'order-42' };
    const hashed = toLogRecord(event, { logKeys: false }).key as string;
    expect(hashed).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(hashed).not.toContain('order-42');
    expect(hashed).toBe(redactKey('order-42'));
    expect(toLogRecord(event, { logKeys: true }).key).toBe('order-42');
  });

  it('writes the cause, the phase and the answered code of a store failure in one sentence', () => {
    const record = toLogRecord(
      {
        event: 'idempotency_store_error',
        policy: 'POST /reports',
        detail: 'claim',
        outcome: 'pool_exhausted',
        code: 'idempotency_store_pool_exhausted',
        status: 503,
        errorType: 'Error',
        cause: 'Error: timeout exceeded when trying to connect',
        error: new Error('timeout exceeded when trying to connect'),
      },
      { logKeys: false },
    );
    expect(record).toMatchObject({
      msg: 'Idempotency store failed on POST /reports (claiming the key; the handler did not run): idempotency_store_pool_exhausted, caused by Error: timeout exceeded when trying to connect',
      detail: 'claim',
      outcome: 'pool_exhausted',
      code: 'idempotency_store_pool_exhausted',
      cause: 'Error: timeout exceeded when trying to connect',
    });
    expect(record).not.toHaveProperty('error');
  });

  it('keeps a key that is already hashed', () => {
    const event: ResilienceEvent = { event: 'idempotency_replayed', policy: 'p', key: 'sha256:0123456789abcdef' };
    expect(toLogRecord(event, { logKeys: false }).key).toBe('sha256:0123456789abcdef');
  });
});

describe('ResilienceLogger', () => {
  afterEach(() => {
    Logger.overrideLogger(false);
    // levels given as an array stay on Nest's static Logger: forget them so the next test starts clean
    (Logger as unknown as { logLevels?: unknown }).logLevels = undefined;
  });

  it('logs one structured object per event with context Resilience, at the default levels', async () => {
    const { moduleRef, capture, events } = await setup();
    events.emit(retry);
    events.emit({ event: 'give_up', policy: 'Reports.create', attempt: 3, errorType: 'AttemptTimeoutError' });
    events.emit({ event: 'idempotency_store_error', policy: 'POST /reports', errorType: 'QueryFailedError' });
    events.emit({ event: 'breaker_rejected', policy: 'Model' });
    expect(capture.lines.map((l) => [l.level, (l.message as { event: string }).event, l.context])).toEqual([
      ['log', 'retry', 'Resilience'],
      ['warn', 'give_up', 'Resilience'],
      ['error', 'idempotency_store_error', 'Resilience'],
      ['debug', 'breaker_rejected', 'Resilience'],
    ]);
    await moduleRef.close();
  });

  it('never logs attempt_end by default', async () => {
    const { moduleRef, capture, events } = await setup();
    events.emit({ event: 'attempt_end', policy: 'p', attempt: 1, durationMs: 3, outcome: 'success' });
    expect(DEFAULT_EVENT_LOG_LEVELS.attempt_end).toBe(false);
    expect(capture.lines).toEqual([]);
    await moduleRef.close();
  });

  it('applies level overrides from the module options', async () => {
    const { moduleRef, capture, events } = await setup({ logging: { levels: { retry: 'debug', give_up: false } } });
    events.emit(retry);
    events.emit({ event: 'give_up', policy: 'p' });
    events.emit({ event: 'breaker_opened', policy: 'p', from: 'closed' });
    expect(capture.lines.map((l) => l.level)).toEqual(['debug', 'warn']);
    await moduleRef.close();
  });

  it('logs raw keys only with logKeys', async () => {
    const { moduleRef, capture, events } = await setup({ logging: { logKeys: true } });
    events.emit({ event: 'idempotency_replayed', policy: 'POST /reports', key: 'order-42' });
    expect((capture.lines[0]!.message as { key: string }).key).toBe('order-42');
    await moduleRef.close();
  });

  it('follows idempotency.logKeys when logging.logKeys is not set', async () => {
    const { moduleRef, capture, events } = await setup({ idempotency: { logKeys: true } } as ResilienceObservabilityOptions);
    events.emit({ event: 'idempotency_replayed', policy: 'POST /reports', key: 'order-42' });
    expect((capture.lines[0]!.message as { key: string }).key).toBe('order-42');
    await moduleRef.close();
  });

  it('wants no event whose level the app logger leaves out, so none is built for it', async () => {
    const { moduleRef, capture, events } = await setup();
    const logger = moduleRef.get(ResilienceLogger);
    expect(logger.wants('idempotency_executed')).toBe(true);
    moduleRef.useLogger(['log', 'warn', 'error']);
    expect(events.wants('idempotency_executed')).toBe(false);
    expect(events.wants('idempotency_replayed')).toBe(true);
    expect(events.wants('attempt_end')).toBe(false);
    events.emit({ event: 'idempotency_executed', policy: 'POST /reports', key: 'order-42' });
    events.emit({ event: 'idempotency_replayed', policy: 'POST /reports', key: 'order-42' });
    expect(capture.lines.map((line) => (line.message as { event: string }).event)).toEqual(['idempotency_replayed']);
    await moduleRef.close();
  });

  it('asks pino, through nestjs-pino, which levels it writes', async () => {
    const { moduleRef, events } = await setup();
    let pinoLevel = 'info';
    const order = ['trace', 'debug', 'info', 'warn', 'error'];
    // the shape nestjs-pino's Logger has: Logger → PinoLogger → the pino instance
    const pinoBacked = Object.assign(new CapturingLogger(), {
      logger: { logger: { isLevelEnabled: (level: string) => order.indexOf(level) >= order.indexOf(pinoLevel) } },
    });
    moduleRef.useLogger(pinoBacked);
    expect(events.wants('idempotency_executed')).toBe(false);
    expect(events.wants('idempotency_replayed')).toBe(true);
    pinoLevel = 'debug';
    expect(events.wants('idempotency_executed')).toBe(true);
    await moduleRef.close();
  });

  it('does not subscribe when disabled', async () => {
    const { moduleRef, capture, events } = await setup({ logging: { enabled: false } });
    events.emit(retry);
    expect(capture.lines).toEqual([]);
    await moduleRef.close();
  });

  it('unsubscribes when the module is destroyed', async () => {
    const { moduleRef, capture, events } = await setup();
    await moduleRef.close();
    events.emit(retry);
    expect(capture.lines).toEqual([]);
  });
});
