import { isInjectedFault } from './injected-fault.js';

/**
 * Names of every event the library emits. Logs, OpenTelemetry and user hooks all consume the same
 * typed stream, so a name means the same thing everywhere.
 * @publicApi
 */
export type ResilienceEventName =
  | 'retry'
  | 'give_up'
  | 'attempt_timeout'
  | 'deadline_exceeded'
  | 'attempt_end'
  | 'budget_exhausted'
  | 'breaker_opened'
  | 'breaker_state_loaded'
  | 'breaker_half_opened'
  | 'breaker_closed'
  | 'breaker_rejected'
  | 'bulkhead_rejected'
  | 'rate_limited'
  | 'fallback_used'
  | 'idempotency_executed'
  | 'idempotency_replayed'
  | 'idempotency_conflict'
  | 'idempotency_mismatch'
  | 'idempotency_rejected'
  | 'idempotency_released'
  | 'idempotency_takeover'
  | 'idempotency_lock_lost'
  | 'idempotency_store_error'
  | 'idempotency_evicted'
  | 'idempotency_response_not_kept'
  | 'shared_state_unavailable'
  | 'shared_state_recovered'
  | 'fault_injected'
  | 'options_reloaded'
  | 'options_reload_refused';

/**
 * One event. `event` names it; the other fields are present when they apply.
 * The Nest layer adds `requestId` and `route` from the request being served.
 * @publicApi
 */
export interface ResilienceEvent {
  /** What happened. */
  readonly event: ResilienceEventName;
  /** Policy key (named policy or `Class.method`), or the route for idempotency events. */
  readonly policy: string;
  /** 1-based attempt number the event is about. */
  readonly attempt?: number;
  /** Backoff before the next attempt, in ms (`retry`). */
  readonly delayMs?: number;
  /** How long the attempt or operation took, in ms. */
  readonly durationMs?: number;
  /** `success` / `failure` and similar outcome labels (`attempt_end`, `give_up`, `fallback_used`). */
  readonly outcome?: string;
  /** The error's class name (`AttemptTimeoutError`, `HttpException`, …). */
  readonly errorType?: string;
  /** HTTP status involved, when there is one. */
  readonly status?: number;
  /** The error itself, for in-process consumers (never logged raw). */
  readonly error?: unknown;
  /** Request id of the request being served, when known. */
  readonly requestId?: string;
  /** `METHOD /route/path` of the HTTP request being served, when known (never set outside HTTP). */
  readonly route?: string;
  /** The Nest context type of the work outside HTTP (`rpc`, `graphql`, `ws`, `job`); absent on HTTP. */
  readonly contextType?: string;
  /** What was being served outside HTTP: the message pattern, GraphQL operation, WebSocket event or queue. */
  readonly operation?: string;
  /**
   * OpenTelemetry semantic-convention attributes of that operation (`rpc.system`, `rpc.method`,
   * `messaging.system`, `messaging.destination.name`, `graphql.operation.name`, …).
   */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Breaker state before a transition. */
  readonly from?: string;
  /** Hashed (or, with `logKeys`, raw) idempotency key. */
  readonly key?: string;
  /** Free-form extra detail (reason of a give-up, fencing token, …). */
  readonly detail?: string;
  /** Stable `code` of the problem the client was answered with, when the event decided it. */
  readonly code?: string;
  /**
   * The underlying error as `Name: message` (at most 500 characters), for operators:
   * `idempotency_store_error` and `shared_state_unavailable` only, so "database down" and "pool
   * exhausted" can be told apart in the log. Never sent to clients.
   */
  readonly cause?: string;
  /**
   * `true` on events a runtime chaos rule caused: `fault_injected` itself. Consumers also mark
   * events whose `error` a rule injected (a retry, a give-up, a fallback of an injected fault):
   * see {@link isChaosEvent}.
   */
  readonly chaos?: boolean;
}

/**
 * Receives events. Must not throw and must return quickly: it is called on the request path.
 * @publicApi
 */
export interface ResilienceEventSink {
  (event: ResilienceEvent): void;
  /**
   * Whether anyone consumes events named `event` right now. Policies skip building per-attempt
   * events (`attempt_end`) when it returns false; a sink without it receives everything.
   */
  readonly wants?: (event: ResilienceEventName) => boolean;
}

/** A sink that drops everything. @publicApi */
export const noopEventSink: ResilienceEventSink = () => undefined;

/**
 * Whether `event` was caused by a runtime chaos rule: `fault_injected`, or an event about an error
 * a rule injected (logs, spans and metrics mark these `resilience.chaos=true`).
 * @publicApi
 */
export function isChaosEvent(event: ResilienceEvent): boolean {
  return event.chaos === true || (event.error !== undefined && isInjectedFault(event.error));
}

/** @internal the class name of a thrown value, for `errorType`. */
export function errorTypeOf(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (error instanceof Error) return error.constructor?.name ?? error.name;
  return typeof error;
}
