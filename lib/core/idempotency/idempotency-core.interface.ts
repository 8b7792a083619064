// What the idempotency core and its caller (the Nest adapter, or any other) say to each other:
// the request and response as the core sees them, the handler's outcome, the answer, and the
// execution and context a handler can read.
import type { Clock } from '../clock.js';
import type { ResilienceEventSink } from '../events.js';
import type { IdempotencyError } from './idempotency-core.errors.js';
import type { ResolvedIdempotencyOptions } from './idempotency-options.interface.js';
import type { IdempotencyStore, StoredResponse } from './idempotency-store.interface.js';

/**
 * What the core needs besides the request: the store, the clock, and where to report.
 * @publicApi
 */
export interface IdempotencyCoreDeps {
  /** Where keys are claimed and responses stored. */
  readonly store: IdempotencyStore;
  /** Time source of the core's own timers (heartbeats); lease times come from the store. */
  readonly clock: Clock;
  /** The event sink (`idempotency_*` events); absent, no events. */
  readonly events?: ResilienceEventSink;
  /** Warnings for operators (a Nest `Logger.warn` in the Nest adapter). */
  readonly warn?: (message: string) => void;
}

/**
 * One request of an idempotent operation, as the core sees it (the Nest adapter reads it from
 * Express or Fastify).
 * @publicApi
 */
export interface IdempotentRequest {
  /** `Class.method`, for messages. */
  readonly name: string;
  /** The route's options, defaults filled in. */
  readonly options: ResolvedIdempotencyOptions;
  /** Upper-case HTTP method. */
  readonly method: string;
  /** Original URL, query included. */
  readonly url: string;
  /** Request headers, lower-case names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Body as received. */
  readonly body: unknown;
  /** `POST /reports/:id`: the `policy` and `route` of events. */
  readonly route: string;
  /** The request id, carried by the events. */
  readonly requestId?: string;
  /** The platform request, handed to `options.keyResolver` and `options.scope`. */
  readonly request: unknown;
  /** Whether the request carries an authenticated user (for the "global keys" warning). */
  readonly hasUser: boolean;
  /**
   * The Nest context type outside HTTP (`rpc`, …): `route` then names the operation (a message
   * pattern), and events carry it as `policy` and `operation`, never as an HTTP `route`. Absent on HTTP.
   */
  readonly contextType?: string;
  /** OpenTelemetry attributes of the operation outside HTTP (`rpc.method`, …), put in its events. */
  readonly attributes?: Readonly<Record<string, string>>;
}

/**
 * What the core reads from and writes to the response.
 * @publicApi
 */
export interface IdempotentResponse {
  /** The status the response carries now (stored with a value outcome). */
  status(): number | undefined;
  /** The allow-listed replayable headers currently set on the response (lower-case names). */
  replayableHeaders(allowList: ReadonlySet<string> | readonly string[]): Record<string, string>;
  /** Sets a response header (the echoed `Idempotency-Key`). */
  setHeader(name: string, value: string): void;
}

/**
 * What running the handler produced.
 * @publicApi
 */
export type HandlerOutcome =
  | {
      /** The handler produced a value. */
      readonly kind: 'value';
      /** The value (the body, or what an Observable emitted). */
      readonly value: unknown;
      /** How many values an Observable emitted (1 for a plain value). */
      readonly emissions: number;
      /** `false` when a fallback answered instead of the handler. */
      readonly fromHandler: boolean;
    }
  | {
      /** The handler threw (or the pipeline failed). */
      readonly kind: 'error';
      /** The error. */
      readonly error: unknown;
    };

/**
 * What the caller does with the request.
 * @publicApi
 */
export type IdempotencyAnswer =
  /** Deliver the handler's own outcome as it is (also when idempotency did not apply). */
  | {
      /** Deliver. */
      readonly kind: 'delivered';
      /** The handler's outcome. */
      readonly outcome: HandlerOutcome;
    }
  /** Replay this stored response (with `Idempotent-Replayed: true`). */
  | {
      /** Replay. */
      readonly kind: 'replay';
      /** The stored response. */
      readonly response: StoredResponse;
    }
  /** Answer this error (400, 409, 422, 500 or 503); the handler did not run, or its effects were rolled back. */
  | {
      /** Reject. */
      readonly kind: 'rejected';
      /** The problem to answer. */
      readonly error: IdempotencyError;
    };

/**
 * State of one idempotent execution, shared by the core and whoever runs the handler.
 * @publicApi
 */
export interface IdempotencyExecution {
  /**
   * Handler invocations whose promise has not settled yet (counted by the caller): a handler
   * abandoned by a timeout keeps its key until it settles.
   */
  running: number;
  /** Called each time `running` drops to 0. */
  onIdle?: () => void;
  /** The store's transaction in transactional mode. */
  transaction?: unknown;
  /** Key, scope and fence of the claim. */
  info?: IdempotencyContext;
}

/**
 * What a handler can learn about the idempotent request it serves.
 * @publicApi
 */
export interface IdempotencyContext {
  /** The client's key. */
  readonly key: string;
  /** The scope (tenant/user) of the key, `''` when global. */
  readonly scope: string;
  /** Stable id of the record (hash of namespace, scope and key). */
  readonly recordId: string;
  /** Fencing token: +1 on every takeover. Pass it to downstream systems that can reject stale writers. */
  readonly fence: number;
  /**
   * A key for a call to another idempotent API (a payment provider, …), stable for this record
   * and `name`, so a re-execution after a takeover sends the same key downstream and cannot act twice.
   */
  downstreamKey(name: string): string;
}
