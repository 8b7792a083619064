import { redactKey } from '../core/redact-key.js';
import { ConsoleLogger, Inject, Injectable, Logger, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { isChaosEvent, type ResilienceEvent, type ResilienceEventName } from '../core/events.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import type {
  ResilienceLogLevel,
  ResilienceObservabilityOptions,
  ResolvedLoggingOptions,
} from './observability-options.interface.js';
import { ResilienceEvents } from './resilience-events.js';

/**
 * Log level of every event by default, chosen so that a healthy service is quiet:
 *
 * | level | events |
 * |---|---|
 * | `error` | `idempotency_store_error` (the store is unreachable: requests fail closed) |
 * | `warn` | `give_up`, `attempt_timeout`, `deadline_exceeded`, `breaker_opened`, `bulkhead_rejected`, `rate_limited` (a `@RateLimit()` turn past the deadline), `budget_exhausted`, `idempotency_mismatch`, `idempotency_takeover`, `idempotency_lock_lost`, `shared_state_unavailable` (once per outage: shared policies use in-process state), `options_reload_refused` |
 * | `log` (info) | `retry`, `breaker_state_loaded` (a shared breaker found open at start-up: no transition), `breaker_half_opened`, `breaker_closed`, `fallback_used`, `idempotency_replayed`, `idempotency_conflict`, `shared_state_recovered`, `fault_injected` (a runtime chaos rule injected a fault), `options_reloaded` |
 * | `debug` | `breaker_rejected` (one per rejected call while open: the `breaker_opened` warning already said it), `idempotency_executed`, `idempotency_rejected`, `idempotency_released`, `idempotency_evicted` (one per record the bounded in-memory store evicts; the store warns once when it starts), `idempotency_response_not_kept` (one per response whose body was not kept; a warning names the route once) |
 * | never | `attempt_end` (one per attempt: metrics only) |
 *
 * Override per event with `forRoot({ logging: { levels: { retry: 'debug' } } })`.
 * @publicApi
 */
export const DEFAULT_EVENT_LOG_LEVELS: Readonly<Record<ResilienceEventName, ResilienceLogLevel>> = Object.freeze({
  retry: 'log',
  give_up: 'warn',
  attempt_timeout: 'warn',
  deadline_exceeded: 'warn',
  attempt_end: false,
  budget_exhausted: 'warn',
  breaker_opened: 'warn',
  breaker_state_loaded: 'log',
  breaker_half_opened: 'log',
  breaker_closed: 'log',
  breaker_rejected: 'debug',
  bulkhead_rejected: 'warn',
  rate_limited: 'warn',
  fallback_used: 'log',
  idempotency_executed: 'debug',
  idempotency_replayed: 'log',
  idempotency_conflict: 'log',
  idempotency_mismatch: 'warn',
  idempotency_rejected: 'debug',
  idempotency_released: 'debug',
  idempotency_takeover: 'warn',
  idempotency_lock_lost: 'warn',
  idempotency_store_error: 'error',
  idempotency_evicted: 'debug',
  idempotency_response_not_kept: 'debug',
  shared_state_unavailable: 'warn',
  shared_state_recovered: 'log',
  fault_injected: 'log',
  options_reloaded: 'log',
  options_reload_refused: 'warn',
});

/**
 * Context name of every resilience log line (`"context":"Resilience"` with nestjs-pino).
 * @publicApi
 */
export const RESILIENCE_LOG_CONTEXT = 'Resilience';

/**
 * Applies the logging defaults to user options (missing or partial options are fine).
 * @internal
 */
export function resolveLoggingOptions(
  options: (ResilienceObservabilityOptions & { idempotency?: { logKeys?: boolean } }) | undefined,
): ResolvedLoggingOptions {
  const logging = options?.logging ?? {};
  return {
    enabled: logging.enabled ?? true,
    // one switch for both places a key could leak: `idempotency.logKeys` also reaches the log
    logKeys: logging.logKeys ?? options?.idempotency?.logKeys ?? false,
    levels: { ...DEFAULT_EVENT_LOG_LEVELS, ...(logging.levels ?? {}) },
  };
}

/**
 * The structured object logged for one event: a human sentence in `msg` plus the event's fields.
 * Never contains the raw `error` (only `errorType`, plus the `cause` message of store errors), and
 * never a raw idempotency key unless `logKeys` is set. Events a runtime chaos rule caused carry
 * `chaos: true`.
 * @internal
 */
export function toLogRecord(event: ResilienceEvent, { logKeys }: { logKeys: boolean }): Record<string, unknown> {
  const record: Record<string, unknown> = {
    msg: describeEvent(event),
    event: event.event,
    requestId: event.requestId,
    route: event.route,
    contextType: event.contextType,
    operation: event.operation,
    ...event.attributes,
    policy: event.policy,
    attempt: event.attempt,
    delayMs: event.delayMs,
    durationMs: event.durationMs,
    outcome: event.outcome,
    errorType: event.errorType,
    status: event.status,
    from: event.from,
    key: event.key === undefined ? undefined : logKeys ? event.key : redactKey(event.key),
    detail: event.detail,
    code: event.code,
    cause: event.cause,
    chaos: isChaosEvent(event) ? true : undefined,
  };
  for (const name of Object.keys(record)) {
    if (record[name] === undefined) delete record[name];
  }
  return record;
}

/** What the store was doing, by the `detail` of an `idempotency_store_error`. */
const STORE_PHASES: Readonly<Record<string, string>> = {
  claim: 'claiming the key; the handler did not run',
  claim_fail_open: 'claiming the key; the handler ran without idempotency (failOpen)',
  commit: 'committing after the handler ran; its writes were rolled back',
  handler: 'under the transactional handler; its writes were rolled back',
  complete: 'storing the response; it was delivered, and a retry after the lease runs again',
  release: 'releasing the key; retries get 409 until the lease ends',
  heartbeat: 'renewing the lease; retrying at the next beat',
};

/** One human sentence per event; the structured fields carry the details. */
function describeEvent(e: ResilienceEvent): string {
  const cause = e.errorType ? ` (${e.errorType}${e.status ? ` ${e.status}` : ''})` : e.status ? ` (${e.status})` : '';
  switch (e.event) {
    case 'retry':
      return `Attempt ${e.attempt ?? '?'} of ${e.policy} failed${cause}; retrying in ${e.delayMs ?? 0} ms`;
    case 'give_up':
      return `${e.policy} gave up after ${e.attempt ?? '?'} attempt(s)${cause}${e.detail ? `: ${e.detail}` : ''}`;
    case 'attempt_timeout':
      return `Attempt ${e.attempt ?? '?'} of ${e.policy} timed out after ${e.durationMs ?? '?'} ms`;
    case 'deadline_exceeded':
      return `${e.policy} exceeded its deadline after ${e.durationMs ?? '?'} ms`;
    case 'attempt_end':
      return `Attempt ${e.attempt ?? '?'} of ${e.policy} ended: ${e.outcome ?? 'unknown'}`;
    case 'budget_exhausted':
      return `Retry budget of ${e.policy} is exhausted; the failure is returned without retrying`;
    case 'breaker_opened':
      return `Circuit breaker ${e.policy} opened${e.from ? ` (was ${e.from})` : ''}; calls fail fast`;
    case 'breaker_state_loaded':
      return `Circuit breaker ${e.policy} is open in the shared state (opened before this instance started); calls fail fast for ${e.delayMs ?? 0} ms more`;
    case 'breaker_half_opened':
      return `Circuit breaker ${e.policy} is half-open; probing the dependency`;
    case 'breaker_closed':
      return `Circuit breaker ${e.policy} closed; the dependency recovered`;
    case 'breaker_rejected':
      return `Circuit breaker ${e.policy} is open; call rejected`;
    case 'bulkhead_rejected':
      return `Bulkhead ${e.policy} is full; call rejected`;
    case 'rate_limited':
      return `Rate limit ${e.policy} refused a call: its turn ${e.detail === 'halted' ? "(after the dependency's Retry-After pause) " : ''}came ${e.delayMs ?? '?'} ms later, past its deadline`;
    case 'fallback_used':
      return `${e.policy} answered with its fallback${cause}`;
    case 'idempotency_executed':
      return e.outcome === 'released'
        ? `Idempotent request on ${e.policy} ran and answered ${e.status ?? '?'}${e.errorType ? ` (${e.errorType})` : ''}; not stored, its key was released so a retry runs again`
        : `Idempotent request on ${e.policy} ran and its ${e.status ?? '?'} response was stored for replay`;
    case 'idempotency_replayed':
      return `Idempotent request on ${e.policy} replayed from the stored response`;
    case 'idempotency_conflict':
      return `Idempotent request on ${e.policy} rejected: the same key is still in progress`;
    case 'idempotency_mismatch':
      return `Idempotent request on ${e.policy} rejected: the key was used with a different request`;
    case 'idempotency_rejected':
      return `Idempotent request on ${e.policy} rejected: missing or invalid key`;
    case 'idempotency_released':
      return `Idempotency key on ${e.policy} released so a retry runs again${cause}`;
    case 'idempotency_takeover':
      return `Idempotency key on ${e.policy} taken over from an owner whose lease expired`;
    case 'idempotency_lock_lost':
      return `Idempotency lease on ${e.policy} was lost; this request's result is not stored`;
    case 'idempotency_evicted':
      return `The in-memory idempotency store evicted a completed record${e.detail ? `: ${e.detail}` : ''}`;
    case 'idempotency_response_not_kept':
      return `Idempotent request on ${e.policy} completed without keeping its response body${e.detail ? ` (${e.detail})` : ''}; replays answer idempotency_response_not_kept`;
    case 'idempotency_store_error':
      return `Idempotency store failed on ${e.policy}${e.detail ? ` (${STORE_PHASES[e.detail] ?? e.detail})` : ''}${e.code ? `: ${e.code}` : ''}${e.cause ? `, caused by ${e.cause}` : cause}`;
    case 'shared_state_unavailable':
      return `Shared policy state is unreachable (first noticed on ${e.policy}); each instance uses its own state until it answers again${e.cause ? `, caused by ${e.cause}` : ''}`;
    case 'shared_state_recovered':
      return 'Shared policy state answers again; shared policies use it again';
    case 'fault_injected':
      return `Chaos: ${describeFault(e)} injected into ${e.policy}${e.attempt !== undefined ? ` (attempt ${e.attempt})` : ''}${e.detail ? `, ${e.detail}` : ''}`;
    case 'options_reloaded':
      return `Resilience options reloaded${e.detail ? ` (${e.detail})` : ''}`;
    case 'options_reload_refused':
      return `Resilience options reload refused; the options in force stay: ${e.detail ?? ''}`;
    default:
      return `${String((e as ResilienceEvent).event)} on ${(e as ResilienceEvent).policy}`;
  }
}

/** What a `fault_injected` event injected, in words (`outcome` is the fault's kind). */
function describeFault(e: ResilienceEvent): string {
  if (e.outcome === 'latency') return `a latency of ${e.delayMs ?? '?'} ms`;
  if (e.outcome === 'http') return `an HTTP ${e.status ?? '?'} answer`;
  return `an exception (${e.errorType ?? 'error'})`;
}

/**
 * Writes every {@link ResilienceEvents} event as one structured log call through Nest's `Logger`
 * (context `'Resilience'`). With nestjs-pino (`app.useLogger(app.get(Logger))`) each call becomes
 * one JSON line carrying `msg`, `event`, `requestId`, `route`, `policy`, `attempt`, `delayMs`,
 * `durationMs`, `errorType`, `status` and a hashed `key`, plus pino-http's request binding.
 * Levels are in {@link DEFAULT_EVENT_LOG_LEVELS}.
 * @publicApi
 */
@Injectable()
export class ResilienceLogger implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(RESILIENCE_LOG_CONTEXT);
  private readonly options: ResolvedLoggingOptions;
  private unsubscribe?: () => void;

  constructor(
    private readonly events: ResilienceEvents,
    @Optional() @Inject(RESOLVED_RESILIENCE_OPTIONS) options?: ResilienceObservabilityOptions,
  ) {
    this.options = resolveLoggingOptions(options);
  }

  /** Subscribes to the event stream (unless logging is disabled). */
  onModuleInit(): void {
    if (!this.options.enabled || this.unsubscribe) return;
    this.unsubscribe = this.events.subscribe((event) => this.write(event), { wants: (event) => this.wants(event) });
  }

  /** Unsubscribes from the event stream. */
  onModuleDestroy(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /**
   * Whether events named `event` would be written now: their level is not `false` and the app's
   * logger has that level enabled (so a `debug` event costs nothing while the app logs at `info`).
   */
  wants(event: ResilienceEventName): boolean {
    const level = this.options.levels[event];
    return level !== false && isLogLevelEnabled(level);
  }

  /** Logs one event at its configured level; events whose level is `false` or disabled in the app's logger are skipped. */
  write(event: ResilienceEvent): void {
    const level = this.options.levels[event.event];
    if (level === false || !isLogLevelEnabled(level)) return;
    const record = toLogRecord(event, this.options);
    if (!writesTextLines()) {
      this.logger[level](record);
      return;
    }
    // Nest's text logger prints an object over one line per field: one line per event instead
    const { msg, ...fields } = record;
    this.logger[level](`${msg as string} ${JSON.stringify(fields)}`);
  }
}

/**
 * Whether the app logs through Nest's own `ConsoleLogger` in text mode (the default logger): it
 * prints an object message as a block of lines, where JSON loggers (`ConsoleLogger({ json: true })`,
 * nestjs-pino) write it as the one structured line they are made for.
 */
function writesTextLines(): boolean {
  const logger = (Logger as unknown as { staticInstanceRef?: unknown }).staticInstanceRef;
  return logger instanceof ConsoleLogger && (logger as unknown as { options?: { json?: boolean } }).options?.json !== true;
}

/** Nest's level names in pino's words (nestjs-pino maps them the same way). */
const PINO_LEVELS: Readonly<Record<Exclude<ResilienceLogLevel, false>, string>> = {
  verbose: 'trace',
  debug: 'debug',
  log: 'info',
  warn: 'warn',
  error: 'error',
};

interface PinoBackedLogger {
  readonly logger?: { readonly logger?: { isLevelEnabled?: (level: string) => boolean } };
}

/**
 * Whether the app's logger writes `level`: Nest's own answer (`logger: false`, the levels given to
 * `NestFactory.create` or `app.useLogger`), and for nestjs-pino, whose levels live in pino and which
 * Nest reports as "every level enabled", pino's answer.
 * @internal
 */
export function isLogLevelEnabled(level: Exclude<ResilienceLogLevel, false>): boolean {
  if (!Logger.isLevelEnabled(level)) return false;
  // nestjs-pino's Logger → its PinoLogger → the (request-bound) pino instance
  const pino = (Logger as unknown as { staticInstanceRef?: PinoBackedLogger }).staticInstanceRef?.logger?.logger;
  return typeof pino?.isLevelEnabled === 'function' ? pino.isLevelEnabled(PINO_LEVELS[level]) : true;
}

export { redactKey };
