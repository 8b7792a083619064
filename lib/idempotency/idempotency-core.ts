import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { DeadlineQueue, type Deadline } from '../core/deadline-queue.js';
import { statusOf } from '../core/classify.js';
import { describeError, ResilienceConfigError } from '../core/errors.js';
import { errorTypeOf, type ResilienceEventName, type ResilienceEventSink } from '../core/events.js';
import { redactKey } from '../core/redact-key.js';
import { FingerprintLimitError, requestFingerprint } from './fingerprint.js';
import { parseIdempotencyKey, validateIdempotencyKey, type IdempotencyKeyParseResult } from './idempotency-key.js';
import type { ResolvedIdempotencyOptions } from './idempotency-options.interface.js';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  StoredResponse,
  TransactionalOutcome,
} from './idempotency-store.interface.js';
import {
  IdempotencyKeyInvalidError,
  IdempotencyKeyMissingError,
  IdempotencyBodyTooDeepError,
  IdempotencyBodyTooLargeError,
  IdempotencyKeyReusedError,
  IdempotencyRequestInProgressError,
  IdempotencyResponseNotStorableError,
  IdempotencyStoreUnavailableError,
  type IdempotencyError,
} from './idempotency-core.errors.js';
import { encodeError, encodeValue, isHttpErrorLike } from './response-encoding.js';
import { isStoreUnavailableError, storeFailureOf } from './store-failure.js';

/** Longest `cause` message put in an `idempotency_store_error` event. */
const MAX_CAUSE_LENGTH = 500;
/** `Retry-After` of a 503 answered while the store is unreachable. */
const STORE_UNAVAILABLE_RETRY_AFTER_MS = 1_000;
/** Release reasons that, in transactional mode, mean "the handler's writes were rolled back although it succeeded". */
const NOT_STORABLE_REASONS = new Set(['not_stored', 'unreplayable', 'too_large']);
/** Longest scope stored as is; longer scopes are replaced by their sha256 (the column holds 255). */
const MAX_SCOPE_LENGTH = 255;
/** Methods that are safe by definition: idempotency keys have no meaning there. @internal */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

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

/**
 * The public context of a claim. The record id is read from the lease only when asked for (the
 * in-memory store hashes it on demand); the lease itself stays private, as its owner token is the
 * claim's secret.
 */
class LeaseContext implements IdempotencyContext {
  readonly fence: number;
  readonly #lease: IdempotencyLease;

  constructor(
    readonly key: string,
    readonly scope: string,
    lease: IdempotencyLease,
  ) {
    this.fence = lease.fence;
    this.#lease = lease;
  }

  get recordId(): string {
    return this.#lease.recordId;
  }

  downstreamKey(name: string): string {
    return createHash('sha256').update(`${this.recordId}:${name}`).digest('hex').slice(0, 48);
  }

  toJSON(): { key: string; scope: string; recordId: string; fence: number } {
    return { key: this.key, scope: this.scope, recordId: this.recordId, fence: this.fence };
  }
}

/** The store's failure the client should retry: 503 `idempotency_store_unavailable`. */
function storeUnavailable(cause: unknown): IdempotencyStoreUnavailableError {
  return new IdempotencyStoreUnavailableError(STORE_UNAVAILABLE_RETRY_AFTER_MS, cause);
}

/** What to do with the key once the outcome is known. */
type Decision =
  | { readonly action: 'store'; readonly response: StoredResponse }
  | { readonly action: 'release'; readonly reason: string; readonly detail: string; readonly warn: boolean };

/** One request, with what was gathered before the claim. */
interface Scoped {
  readonly request: IdempotentRequest;
  readonly response: IdempotentResponse;
  readonly key: string;
  readonly claim: IdempotencyClaim;
}

interface Heartbeat {
  /** Whether a heartbeat found the lease taken over (already reported). */
  readonly lost: boolean;
  stop(): void;
}

/** The renewal state of one request's lease: a plain object, no closures (one per request). */
class LeaseHeartbeat implements Heartbeat {
  lost = false;
  stopped = false;
  next: Deadline | undefined = undefined;

  constructor(
    private readonly queue: DeadlineQueue,
    readonly scoped: Scoped,
    readonly lease: IdempotencyLease,
  ) {}

  schedule(beat: (heartbeat: LeaseHeartbeat) => void): void {
    this.next = this.queue.schedule(beat, Math.max(1, Math.floor(this.scoped.request.options.lease / 3)), this);
  }

  stop(): void {
    this.stopped = true;
    if (this.next !== undefined) this.queue.cancel(this.next);
    this.next = undefined;
  }
}

/**
 * The `Idempotency-Key` contract without any framework: reads and validates the key, scopes and
 * fingerprints the request, claims the key in the {@link IdempotencyStore}, then answers a replay,
 * 409 or 422, or runs the handler once under a heartbeat-renewed lease (or inside the store's
 * transaction) and stores its outcome or releases the key.
 *
 * Storage policy: outcomes with `storeIf(status)` (default status < 500), HTTP errors the handler
 * threw included, are stored. Server errors, crashes, values a fallback produced, streams and
 * other unreplayable results and bodies over `maxStoredBodyBytes` are delivered but not stored:
 * the key is released so a retry runs again (with a warning for the last three). In
 * transactional mode a dropped connection, a lock or a statement timeout answers 503
 * `idempotency_store_unavailable`: the writes were rolled back and the key is free.
 * @example
 * const core = new IdempotencyCore({ store: new InMemoryIdempotencyStore(), clock: systemClock });
 * const answer = await core.execute(request, response, async () => ({ kind: 'value', value: await charge(), emissions: 1, fromHandler: true }));
 * @publicApi
 */
export class IdempotencyCore {
  private readonly warned = new Set<string>();
  /** Lease renewals of every request in flight, on one timer (most requests end long before their first). */
  private readonly heartbeats: DeadlineQueue;

  constructor(private readonly deps: IdempotencyCoreDeps) {
    this.heartbeats = new DeadlineQueue(deps.clock);
  }

  /** Runs `run` at most once per key (it gets the execution, or `undefined` when idempotency does not apply). */
  async execute(
    request: IdempotentRequest,
    response: IdempotentResponse,
    handler: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>,
  ): Promise<IdempotencyAnswer> {
    const { options } = request;
    // a rejected run is the handler's error, like a thrown one
    const run = (execution: IdempotencyExecution | undefined): Promise<HandlerOutcome> =>
      handler(execution).catch((error: unknown): HandlerOutcome => ({ kind: 'error', error }));
    if (SAFE_METHODS.has(request.method)) return { kind: 'delivered', outcome: await run(undefined) };
    const parsed = this.readKey(request, options);
    if (!parsed) {
      if (!options.required) return { kind: 'delivered', outcome: await run(undefined) };
      this.emit('idempotency_rejected', request, undefined, { status: 400, detail: 'missing' });
      return rejected(new IdempotencyKeyMissingError(options.headerName));
    }
    if (!parsed.ok) {
      this.emit('idempotency_rejected', request, undefined, { status: 400, detail: `invalid: ${parsed.reason}` });
      return rejected(new IdempotencyKeyInvalidError(options.headerName, parsed.reason));
    }
    const key = parsed.key;
    response.setHeader(options.headerName, key);
    const scoped = this.scopeOf(request);
    // a global key has its scope at once: no await (one microtask less per request)
    const scope = typeof scoped === 'string' ? scoped : await scoped;
    let fingerprint: string;
    try {
      fingerprint = requestFingerprint({ scope, method: request.method, url: request.url, body: request.body }, options.fingerprintLimits);
    } catch (error) {
      if (!(error instanceof FingerprintLimitError)) throw error;
      const refusal = error.limit === 'depth' ? new IdempotencyBodyTooDeepError(error.max) : new IdempotencyBodyTooLargeError(error.max);
      this.emit('idempotency_rejected', request, key, { status: refusal.status, detail: refusal.code });
      return rejected(refusal);
    }
    const claim: IdempotencyClaim = {
      namespace: options.namespace,
      scope,
      key,
      fingerprint,
      method: request.method,
      path: pathOf(request.url),
      leaseMs: options.lease,
      ttlMs: options.ttl,
    };
    const call: Scoped = { request, response, key, claim };
    return options.transactional ? this.runTransactional(call, run) : this.runLeased(call, run);
  }

  /** Lease mode: claim, run under a heartbeat, then complete or release (compare-and-set on the owner). */
  private async runLeased(scoped: Scoped, run: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>): Promise<IdempotencyAnswer> {
    let result: IdempotencyClaimResult;
    try {
      result = await this.deps.store.claim(scoped.claim);
    } catch (error) {
      return this.storeUnavailable(scoped, error, run);
    }
    if (result.state !== 'acquired') return this.answerExisting(scoped, result);
    const { lease } = result;
    if (result.takeover) this.emit('idempotency_takeover', scoped.request, scoped.key, { detail: `fence ${lease.fence}` });
    const execution: IdempotencyExecution = { running: 0, info: new LeaseContext(scoped.key, scoped.claim.scope, lease) };
    const heartbeat = this.startHeartbeat(scoped, lease);
    const outcome = await run(execution);
    const decision = this.decide(scoped, outcome, false);
    if (decision.action === 'store') {
      heartbeat.stop();
      if (!heartbeat.lost) await this.complete(scoped, lease, decision.response);
    } else {
      this.reportRelease(scoped, decision);
      heartbeat.stop();
      // The response goes out now. A handler still running (abandoned by a timeout) keeps the key
      // until it settles, but unrenewed: at most one more lease, so a hung handler cannot block
      // the key for good (a retry after that may overlap it, as after a crash).
      const release = () => (heartbeat.lost ? Promise.resolve() : this.release(scoped, lease));
      if (execution.running > 0) execution.onIdle = () => void release();
      else await release();
    }
    this.emitExecuted(scoped, outcome, decision);
    return { kind: 'delivered', outcome };
  }

  /** Transactional mode: the store claims, runs the handler and stores the response in one transaction. */
  private async runTransactional(scoped: Scoped, run: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>): Promise<IdempotencyAnswer> {
    const { store } = this.deps;
    const runInTransaction = store.runInTransaction?.bind(store);
    if (!runInTransaction) {
      throw new ResilienceConfigError(
        `${scoped.request.name} uses @Idempotent({ transactional: true }) but the idempotency store (${store.constructor?.name ?? 'custom store'}) has no runInTransaction(). Use TypeOrmIdempotencyStore from nest-resilience/typeorm (forRoot({ idempotency: { store } })), or drop transactional.`,
      );
    }
    let workStarted = false;
    let local: { outcome: HandlerOutcome; decision: Decision; rollback?: Error } | undefined;
    let result: Awaited<ReturnType<typeof runInTransaction>>;
    try {
      result = await runInTransaction(scoped.claim, async (transaction, lease): Promise<TransactionalOutcome<undefined>> => {
        workStarted = true;
        const execution: IdempotencyExecution = {
          running: 0,
          transaction,
          info: new LeaseContext(scoped.key, scoped.claim.scope, lease),
        };
        const outcome = await run(execution);
        const decision = this.decide(scoped, outcome, true);
        if (decision.action === 'store') {
          local = { outcome, decision };
          return { action: 'store', response: decision.response, value: undefined };
        }
        const rollback = new Error(`Rolled back: ${decision.detail}.`);
        local = { outcome, decision, rollback };
        return { action: 'rollback', error: rollback };
      });
    } catch (error) {
      if (!workStarted) return this.storeUnavailable(scoped, error, run);
      if (!local?.rollback || error !== local.rollback) {
        // The handler ran but the transaction did not commit: its writes are gone, so a retry must run it again.
        const refusal = storeUnavailable(error);
        this.storeError(scoped.request, scoped.key, error, 'commit', refusal);
        return rejected(refusal);
      }
    }
    if (local === undefined) return this.answerExisting(scoped, result! as Exclude<IdempotencyClaimResult, { state: 'acquired' }>);
    const { outcome, decision } = local as { outcome: HandlerOutcome; decision: Decision };
    if (decision.action === 'release') this.reportRelease(scoped, decision);
    this.emitExecuted(scoped, outcome, decision);
    if (outcome.kind === 'error' && isStoreUnavailableError(outcome.error)) {
      // the database went away under the handler: its writes were rolled back, the key is free
      const refusal = storeUnavailable(outcome.error);
      this.storeError(scoped.request, scoped.key, outcome.error, 'handler', refusal);
      return rejected(refusal);
    }
    if (decision.action === 'release' && outcome.kind === 'value' && NOT_STORABLE_REASONS.has(decision.reason)) {
      return rejected(new IdempotencyResponseNotStorableError(decision.reason === 'too_large' ? 'the body is larger than maxStoredBodyBytes' : decision.reason === 'not_stored' ? 'its status is not stored (storeIf)' : 'the body cannot be replayed'));
    }
    return { kind: 'delivered', outcome };
  }

  /** Replays a completed response, or answers 422 (other request) / 409 (still running). */
  private answerExisting(scoped: Scoped, result: Exclude<IdempotencyClaimResult, { state: 'acquired' }>): IdempotencyAnswer {
    const { request, key } = scoped;
    const { headerName } = request.options;
    if (!result.sameRequest) {
      this.emit('idempotency_mismatch', request, key, { status: 422 });
      return rejected(new IdempotencyKeyReusedError(headerName));
    }
    if (result.state === 'in_progress') {
      this.emit('idempotency_conflict', request, key, { status: 409 });
      return rejected(new IdempotencyRequestInProgressError(headerName, result.retryAfterMs));
    }
    this.emit('idempotency_replayed', request, key, { status: result.response.status });
    return { kind: 'replay', response: result.response };
  }

  /** Fail closed (503, handler not run) or, with `failOpen`, run the handler without idempotency. */
  private async storeUnavailable(
    scoped: Scoped,
    error: unknown,
    run: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>,
  ): Promise<IdempotencyAnswer> {
    const { request } = scoped;
    const { failOpen } = request.options;
    if (failOpen) {
      this.storeError(request, scoped.key, error, 'claim_fail_open');
      return { kind: 'delivered', outcome: await run(undefined) };
    }
    const refusal = storeUnavailable(error);
    this.storeError(request, scoped.key, error, 'claim', refusal);
    return rejected(refusal);
  }

  /** Whether the outcome is stored (and what), or the key released (and why). */
  private decide(scoped: Scoped, outcome: HandlerOutcome, transactional: boolean): Decision {
    const { options } = scoped.request;
    if (outcome.kind === 'error') {
      const { error } = outcome;
      if (transactional) return release('error', `the handler failed with ${errorTypeOf(error)}; its writes were rolled back`, false);
      if (!isHttpErrorLike(error)) return release('crash', `the handler failed with ${errorTypeOf(error)}`, false);
      const status = error.getStatus();
      if (!options.storeIf(status, error)) return release('not_stored', `status ${status} is not stored (storeIf)`, false);
      const encoded = encodeError(error, scoped.response.replayableHeaders(options.replayHeaders), options.maxStoredBodyBytes);
      return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
    }
    if (!outcome.fromHandler) {
      return release('not_handler_result', 'the value was not produced by the handler (it failed and a fallback answered)', false);
    }
    const status = scoped.response.status() ?? 200;
    if (!options.storeIf(status)) return release('not_stored', `status ${status} is not stored (storeIf)`, transactional);
    const headers = scoped.response.replayableHeaders(options.replayHeaders);
    const encoded = encodeValue(outcome.value, outcome.emissions, status, headers, options.maxStoredBodyBytes);
    return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
  }

  private reportRelease(scoped: Scoped, decision: Extract<Decision, { action: 'release' }>): void {
    if (!decision.warn) return;
    const { request } = scoped;
    const fix =
      decision.reason === 'too_large'
        ? 'raise maxStoredBodyBytes or return a smaller body'
        : 'return a JSON-serialisable value (not a stream, file, buffer or multi-value Observable)';
    const consequence = request.options.transactional
      ? 'its writes were rolled back and the client got a 500'
      : 'the response was delivered but not stored, so a retry with the same key runs the handler again';
    this.warnOnce(`${decision.reason}:${request.route}`, `${request.route} (${request.name}): ${decision.detail}; ${consequence}. To make it replayable, ${fix}.`);
  }

  private emitExecuted(scoped: Scoped, outcome: HandlerOutcome, decision: Decision): void {
    const status = outcome.kind === 'error' ? (statusOf(outcome.error) ?? 500) : scoped.response.status();
    if (decision.action === 'release') {
      this.emit('idempotency_released', scoped.request, scoped.key, { status, outcome: decision.reason, detail: decision.detail });
    }
    this.emit('idempotency_executed', scoped.request, scoped.key, {
      status,
      outcome: decision.action === 'store' ? 'stored' : 'released',
      ...(outcome.kind === 'error' ? { errorType: errorTypeOf(outcome.error) } : {}),
    });
  }

  private async complete(scoped: Scoped, lease: IdempotencyLease, response: StoredResponse): Promise<void> {
    try {
      const stored = await this.deps.store.complete(lease, response, scoped.request.options.ttl);
      if (!stored) this.lockLost(scoped, 'complete');
    } catch (error) {
      // The side effect happened: deliver the response and let the lease run out; never delete.
      this.storeError(scoped.request, scoped.key, error, 'complete');
    }
  }

  private async release(scoped: Scoped, lease: IdempotencyLease): Promise<void> {
    try {
      const released = await this.deps.store.release(lease);
      if (!released) this.lockLost(scoped, 'release');
    } catch (error) {
      this.storeError(scoped.request, scoped.key, error, 'release');
    }
  }

  private lockLost(scoped: Scoped, operation: string): void {
    this.emit('idempotency_lock_lost', scoped.request, scoped.key, { detail: operation });
    this.deps.warn?.(
      `${scoped.request.route} lost its idempotency lease before ${operation} (another request took the key over after the lease expired); this request's ${operation} changed nothing. Raise the lease if handlers legitimately run longer.`,
    );
  }

  /** Renews the lease every `lease / 3` on the clock until stopped or lost. */
  private startHeartbeat(scoped: Scoped, lease: IdempotencyLease): Heartbeat {
    const heartbeat = new LeaseHeartbeat(this.heartbeats, scoped, lease);
    heartbeat.schedule(this.beat);
    return heartbeat;
  }

  /** One renewal; the next is scheduled when it succeeds (or failed to reach the store). */
  private readonly beat = (heartbeat: LeaseHeartbeat): void => {
    heartbeat.next = undefined;
    if (heartbeat.stopped) return;
    const { scoped, lease } = heartbeat;
    this.deps.store.heartbeat(lease, scoped.request.options.lease).then(
      (renewed) => {
        if (heartbeat.stopped) return;
        if (renewed) return heartbeat.schedule(this.beat);
        heartbeat.lost = true;
        this.lockLost(scoped, 'heartbeat');
      },
      (error: unknown) => {
        if (heartbeat.stopped) return;
        this.storeError(scoped.request, scoped.key, error, 'heartbeat');
        heartbeat.schedule(this.beat);
      },
    );
  };

  private readKey(request: IdempotentRequest, options: ResolvedIdempotencyOptions): IdempotencyKeyParseResult | undefined {
    if (options.keyResolver) {
      const key = options.keyResolver(request.request);
      return key === undefined || key === null ? undefined : validateIdempotencyKey(String(key));
    }
    const value = request.headers[options.header];
    if (value === undefined) return undefined;
    if (Array.isArray(value)) {
      return value.length === 1 ? parseIdempotencyKey(value[0]!) : { ok: false, reason: 'the header was sent several times; send exactly one key' };
    }
    return parseIdempotencyKey(String(value));
  }

  private scopeOf(request: IdempotentRequest): string | Promise<string> {
    const { scope } = request.options;
    if (typeof scope === 'function') {
      return Promise.resolve(scope(request.request)).then((value) => {
        const text = value === undefined || value === null ? '' : String(value);
        return text.length > MAX_SCOPE_LENGTH ? createHash('sha256').update(text).digest('hex') : text;
      });
    }
    if (scope === undefined && request.hasUser) {
      this.warnOnce(
        `scope:${request.route}`,
        `${request.route} (${request.name}) serves authenticated users but its idempotency keys are global: one user's key can replay another user's response. Set @Idempotent({ scope: (req) => req.user.id }) (or forRoot({ idempotency: { scope } })), or scope: false if global keys are intended.`,
      );
    }
    return '';
  }

  private emit(
    event: ResilienceEventName,
    request: IdempotentRequest,
    key: string | undefined,
    extra: { status?: number; detail?: string; outcome?: string; error?: unknown; errorType?: string; code?: string; cause?: string } = {},
  ): void {
    const sink = this.deps.events;
    // hashing the key and building the event cost more than the rest of a replay: skip both when nobody listens
    if (!sink || sink.wants?.(event) === false) return;
    sink({
      event,
      policy: request.route,
      route: request.route,
      ...(request.requestId === undefined ? {} : { requestId: request.requestId }),
      ...(key === undefined ? {} : { key: request.options.logKeys ? key : redactKey(key) }),
      ...extra,
    });
  }

  /**
   * Reports a store failure: one `idempotency_store_error` event carrying what the store was doing
   * (`detail`), the failure kind (`outcome`), the problem `code` answered (when one was) and the
   * underlying message (`cause`), which the logger writes and clients never see.
   */
  private storeError(request: IdempotentRequest, key: string | undefined, error: unknown, phase: string, refusal?: IdempotencyStoreUnavailableError): void {
    this.emit('idempotency_store_error', request, key, {
      error,
      errorType: errorTypeOf(error),
      detail: phase,
      outcome: storeFailureOf(error) ?? 'unclassified',
      cause: describeError(error).slice(0, MAX_CAUSE_LENGTH),
      ...(refusal ? { status: refusal.status, code: refusal.code } : {}),
    });
  }

  private warnOnce(id: string, message: string): void {
    if (this.warned.has(id)) return;
    this.warned.add(id);
    this.deps.warn?.(message);
  }
}

function rejected(error: IdempotencyError): IdempotencyAnswer {
  return { kind: 'rejected', error };
}

function release(reason: string, detail: string, warn: boolean): Decision {
  return { action: 'release', reason, detail, warn };
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return (query === -1 ? url : url.slice(0, query)).slice(0, 2048);
}
