import { createHash } from 'node:crypto';
import { DeadlineQueue } from '../deadline-queue.js';
import { statusOf } from '../classify.js';
import { describeError, ResilienceConfigError } from '../errors.js';
import { errorTypeOf, type ResilienceEventName } from '../events.js';
import { redactKey } from '../redact-key.js';
import { FingerprintLimitError, requestFingerprint } from './fingerprint.js';
import { parseIdempotencyKey, validateIdempotencyKey, type IdempotencyKeyParseResult } from './idempotency-key.js';
import type {
  HandlerOutcome,
  IdempotencyAnswer,
  IdempotencyCoreDeps,
  IdempotencyExecution,
  IdempotentRequest,
  IdempotentResponse,
} from './idempotency-core.interface.js';
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
  IdempotencyErrorCode,
  IdempotencyKeyInvalidError,
  IdempotencyKeyMissingError,
  IdempotencyBodyTooDeepError,
  IdempotencyBodyTooLargeError,
  IdempotencyKeyReusedError,
  IdempotencyRequestInProgressError,
  IdempotencyResponseNotKeptError,
  IdempotencyResponseNotStorableError,
  IdempotencyStoreUnavailableError,
  type IdempotencyError,
} from './idempotency-core.errors.js';
import { LeaseContext, LeaseHeartbeat } from './lease.js';
import { STORED_BYTES, STORED_KIND, STORED_NOT_KEPT, STORED_REASON, type NotStorable } from './response-encoding.js';
import { decideStorage, NOT_STORED, type Decision } from './storage-decision.js';
import { isStoreUnavailableError, storeFailureOf } from './store-failure.js';

/** Longest `cause` message put in an `idempotency_store_error` event. */
const MAX_CAUSE_LENGTH = 500;
/** `Retry-After` of a 503 answered while the store is unreachable. */
const STORE_UNAVAILABLE_RETRY_AFTER_MS = 1_000;
/** Distinct warnings given (and remembered) at most: one per route and kind. */
const MAX_WARNINGS = 1_000;
/** Longest scope stored as is; longer scopes are replaced by their sha256 (the column holds 255). */
const MAX_SCOPE_LENGTH = 255;
/** Methods that are safe by definition: idempotency keys have no meaning there. @internal */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The store's failure the client should retry: 503 `idempotency_store_unavailable`. */
function storeUnavailable(cause: unknown): IdempotencyStoreUnavailableError {
  return new IdempotencyStoreUnavailableError(STORE_UNAVAILABLE_RETRY_AFTER_MS, cause);
}

/**
 * What a request claims. A class, not a literal: it lives as long as the handler runs, and V8
 * allocates the objects of a literal that outlive a scavenge in old space from then on.
 */
class Claim implements IdempotencyClaim {
  constructor(
    readonly namespace: string,
    readonly scope: string,
    readonly key: string,
    readonly fingerprint: string,
    readonly method: string,
    readonly path: string,
    readonly leaseMs: number,
    readonly ttlMs: number,
  ) {}
}

/** One request, with what was gathered before the claim (a class, like {@link Claim}). */
class Scoped {
  constructor(
    readonly request: IdempotentRequest,
    readonly response: IdempotentResponse,
    readonly key: string,
    readonly claim: IdempotencyClaim,
  ) {}
}

/** The execution of a claimed key in lease mode (a class, like {@link Claim}). */
class LeasedExecution implements IdempotencyExecution {
  running = 0;
  onIdle: (() => void) | undefined = undefined;

  constructor(readonly info: LeaseContext) {}
}

/** A handler's run, its rejection turned into an error outcome like a thrown error. */
type HandlerRunner = (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>;

const errorOutcome = (error: unknown): HandlerOutcome => ({ kind: 'error', error });

function runHandler(handler: HandlerRunner, execution: IdempotencyExecution | undefined): Promise<HandlerOutcome> {
  return handler(execution).then(undefined, errorOutcome);
}

function delivered(outcome: HandlerOutcome): IdempotencyAnswer {
  return { kind: 'delivered', outcome };
}

/**
 * The `Idempotency-Key` contract without any framework: reads and validates the key, scopes and
 * fingerprints the request, claims the key in the {@link IdempotencyStore}, then answers a replay,
 * 409 or 422, or runs the handler once under a heartbeat-renewed lease (or inside the store's
 * transaction) and stores its outcome or releases the key.
 *
 * Storage policy: outcomes with `storeIf(status)` (default status < 500), HTTP errors the handler
 * threw included, are stored. Server errors, crashes and values a fallback produced are delivered
 * but not stored: the key is released so a retry runs again. A body over `maxResponseBytes`, a
 * stream and other unreplayable results are delivered and their outcome is stored **without the
 * body** (an `idempotency_response_not_kept` event, and a warning once per route): the handler
 * never runs again for the key, and replays answer the problem `idempotency_response_not_kept`
 * with the original status ({@link notKeptProblemOf}). In transactional mode a dropped connection,
 * a lock or a statement timeout answers 503 `idempotency_store_unavailable`: the writes were
 * rolled back and the key is free (a COMMIT that got no answer is answered 503 too, and the retry
 * learns from the record whether it happened).
 *
 * Silent store: a store operation that timed out is answered at once (503, or the handler's own
 * outcome once it ran), never after another round trip to that store: a release owed after a
 * handler that failed on an unanswering database runs in the background, and what it cannot do
 * the lease undoes when it ends.
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
    // a store with something to report (the in-memory store's evictions) reports to this app
    deps.store.observe?.({ events: deps.events, warn: deps.warn });
  }

  /** Runs `handler` at most once per key (it gets the execution, or `undefined` when idempotency does not apply). */
  execute(
    request: IdempotentRequest,
    response: IdempotentResponse,
    handler: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>,
  ): Promise<IdempotencyAnswer> {
    // not an async function: a global key is claimed with no await before the store's, and the
    // store's promise is handed on as it is (an async function returning it costs two more turns)
    try {
      const { options } = request;
      if (SAFE_METHODS.has(request.method)) return runHandler(handler, undefined).then(delivered);
      const parsed = this.readKey(request, options);
      if (!parsed) {
        if (!options.required) return runHandler(handler, undefined).then(delivered);
        this.emit('idempotency_rejected', request, undefined, { status: 400, detail: 'missing' });
        return Promise.resolve(rejected(new IdempotencyKeyMissingError(options.headerName)));
      }
      if (!parsed.ok) {
        this.emit('idempotency_rejected', request, undefined, { status: 400, detail: `invalid: ${parsed.reason}` });
        return Promise.resolve(rejected(new IdempotencyKeyInvalidError(options.headerName, parsed.reason)));
      }
      const key = parsed.key;
      response.setHeader(options.headerName, key);
      const scope = this.scopeOf(request);
      return typeof scope === 'string' ? this.claimScoped(request, response, key, scope, handler) : scope.then((text) => this.claimScoped(request, response, key, text, handler));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Fingerprints the request in its scope, then claims its key. */
  private claimScoped(request: IdempotentRequest, response: IdempotentResponse, key: string, scope: string, handler: HandlerRunner): Promise<IdempotencyAnswer> {
    const { options } = request;
    let fingerprint: string;
    try {
      fingerprint = requestFingerprint({ scope, method: request.method, url: request.url, body: request.body }, options.fingerprintLimits);
    } catch (error) {
      if (!(error instanceof FingerprintLimitError)) throw error;
      const refusal = error.limit === 'depth' ? new IdempotencyBodyTooDeepError(error.max) : new IdempotencyBodyTooLargeError(error.max);
      this.emit('idempotency_rejected', request, key, { status: refusal.status, detail: refusal.code });
      return Promise.resolve(rejected(refusal));
    }
    const claim = new Claim(options.namespace, scope, key, fingerprint, request.method, pathOf(request.url), options.lease, options.ttl);
    const call = new Scoped(request, response, key, claim);
    return options.transactional ? this.runTransactional(call, handler) : this.runLeased(call, handler);
  }

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

  /** Lease mode: claim, run under a heartbeat, then complete or release (compare-and-set on the owner). */
  private async runLeased(scoped: Scoped, handler: HandlerRunner): Promise<IdempotencyAnswer> {
    let result: IdempotencyClaimResult;
    try {
      result = await this.deps.store.claim(scoped.claim);
    } catch (error) {
      return this.storeUnavailable(scoped, error, handler);
    }
    if (result.state !== 'acquired') return this.answerExisting(scoped, result);
    const { lease } = result;
    if (result.takeover) this.emit('idempotency_takeover', scoped.request, scoped.key, { detail: `fence ${lease.fence}` });
    const execution = new LeasedExecution(new LeaseContext(scoped.key, scoped.claim.scope, lease));
    const heartbeat = this.startHeartbeat(scoped, lease);
    const outcome = await runHandler(handler, execution);
    const decision = decideStorage(scoped.request.options, scoped.response, outcome, false);
    if (decision.action === 'store') {
      heartbeat.stop();
      if (!heartbeat.lost) await this.complete(scoped, lease, decision.response);
      if (decision.notKept) this.reportNotKept(scoped, decision.notKept);
    } else {
      this.reportRelease(scoped, decision);
      heartbeat.stop();
      // The response goes out now. A handler still running (abandoned by a timeout) keeps the key
      // until it settles, but unrenewed: at most one more lease, so a hung handler cannot block
      // the key for good (a retry after that may overlap it, as after a crash).
      const release = () => (heartbeat.lost ? Promise.resolve() : this.release(scoped, lease));
      if (execution.running > 0) execution.onIdle = () => void release();
      // The handler failed on a database that did not answer (often the store's own): a release
      // now would wait as long again. The answer goes out at once; the release follows in the
      // background, bounded by the store's own timeout, and if it cannot land the lease ends the claim.
      else if (outcome.kind === 'error' && isStoreUnavailableError(outcome.error)) void release();
      else await release();
    }
    this.emitExecuted(scoped, outcome, decision);
    return delivered(outcome);
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
      return rejected(new IdempotencyRequestInProgressError(headerName, inProgressRetryAfterMs(result.retryAfterMs, request.options.deadline)));
    }
    this.emit('idempotency_replayed', request, key, { status: result.response.status });
    return { kind: 'replay', response: result.response };
  }

  /** Fail closed (503, handler not run) or, with `failOpen`, run the handler without idempotency. */
  private async storeUnavailable(scoped: Scoped, error: unknown, handler: HandlerRunner): Promise<IdempotencyAnswer> {
    const { request } = scoped;
    const { failOpen } = request.options;
    if (failOpen) {
      this.storeError(request, scoped.key, error, 'claim_fail_open');
      return delivered(await runHandler(handler, undefined));
    }
    const refusal = storeUnavailable(error);
    this.storeError(request, scoped.key, error, 'claim', refusal);
    return rejected(refusal);
  }

  /** Renews the lease every `lease / 3` on the clock until stopped or lost. */
  private startHeartbeat(scoped: Scoped, lease: IdempotencyLease): LeaseHeartbeat<Scoped> {
    const heartbeat = new LeaseHeartbeat(this.heartbeats, scoped, lease, Math.max(1, Math.floor(scoped.request.options.lease / 3)));
    heartbeat.schedule(this.beat);
    return heartbeat;
  }

  /** One renewal; the next is scheduled when it succeeds (or failed to reach the store). */
  private readonly beat = (heartbeat: LeaseHeartbeat<Scoped>): void => {
    heartbeat.next = undefined;
    if (heartbeat.stopped) return;
    const { owner: scoped, lease } = heartbeat;
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

  private reportRelease(scoped: Scoped, decision: Extract<Decision, { action: 'release' }>): void {
    if (!decision.warn) return;
    const { request } = scoped;
    const consequence = request.options.transactional
      ? 'its writes were rolled back and the client got a 500'
      : 'the response was delivered but not stored, so a retry with the same key runs the handler again';
    this.warnOnce(`${decision.reason}:${request.route}`, `${request.route} (${request.name}): ${decision.detail}; ${consequence}.`);
  }

  /** A response stored without its body: one event per request, and the route named once. */
  private reportNotKept(scoped: Scoped, notKept: NotStorable): void {
    const { request } = scoped;
    this.emit('idempotency_response_not_kept', request, scoped.key, { outcome: notKept.reason, detail: notKept.detail, code: IdempotencyErrorCode.ResponseNotKept });
    const fix =
      notKept.reason === 'too_large'
        ? 'raise maxResponseBytes (the store must hold it: memory, rows or Redis hashes) or return a smaller body'
        : 'return a JSON-serialisable value (not a stream, file, buffer or multi-value Observable)';
    this.warnOnce(
      `not_kept:${notKept.reason}:${request.route}`,
      `${request.route} (${request.name}): ${notKept.detail}; the response was delivered and its key completed without the body, so retries with the same key get idempotency_response_not_kept instead of the response (the handler does not run again). To replay the body, ${fix}.`,
    );
  }

  private emitExecuted(scoped: Scoped, outcome: HandlerOutcome, decision: Decision): void {
    // the status and the events' fields are worked out only for a listener (each name asked once)
    const released = decision.action === 'release' && this.listens('idempotency_released');
    const executed = this.listens('idempotency_executed');
    if (!released && !executed) return;
    const status = outcome.kind === 'error' ? (statusOf(outcome.error) ?? 500) : scoped.response.status();
    if (released && decision.action === 'release') this.send('idempotency_released', scoped.request, scoped.key, { status, outcome: decision.reason, detail: decision.detail });
    if (!executed) return;
    this.send('idempotency_executed', scoped.request, scoped.key, {
      status,
      outcome: decision.action === 'store' ? 'stored' : 'released',
      ...(outcome.kind === 'error' ? { errorType: errorTypeOf(outcome.error) } : {}),
    });
  }

  /** Transactional mode: the store claims, runs the handler and stores the response in one transaction. */
  private async runTransactional(scoped: Scoped, handler: HandlerRunner): Promise<IdempotencyAnswer> {
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
        const outcome = await runHandler(handler, execution);
        const decision = decideStorage(scoped.request.options, scoped.response, outcome, true);
        if (decision.action === 'store') {
          local = { outcome, decision };
          return { action: 'store', response: decision.response, value: undefined };
        }
        // the handler's error travels along, so the store can tell a connection left without an answer
        const rollback = new Error(`Rolled back: ${decision.detail}.`, outcome.kind === 'error' ? { cause: outcome.error } : undefined);
        local = { outcome, decision, rollback };
        return { action: 'rollback', error: rollback };
      });
    } catch (error) {
      if (!workStarted) return this.storeUnavailable(scoped, error, handler);
      if (!local?.rollback || error !== local.rollback) {
        // The handler ran but the transaction did not commit (its writes are gone, a retry runs it
        // again), or its COMMIT got no answer: then the retry finds out from the record, never a guess.
        const refusal = storeUnavailable(error);
        this.storeError(scoped.request, scoped.key, error, refusal.outcomeUnknown ? 'commit_unknown' : 'commit', refusal);
        return rejected(refusal);
      }
    }
    if (local === undefined) return this.answerExisting(scoped, result! as Exclude<IdempotencyClaimResult, { state: 'acquired' }>);
    const { outcome, decision } = local as { outcome: HandlerOutcome; decision: Decision };
    if (decision.action === 'release') this.reportRelease(scoped, decision);
    else if (decision.notKept) this.reportNotKept(scoped, decision.notKept);
    this.emitExecuted(scoped, outcome, decision);
    if (outcome.kind === 'error' && isStoreUnavailableError(outcome.error)) {
      // the database went away under the handler: its writes were rolled back, the key is free
      const refusal = storeUnavailable(outcome.error);
      this.storeError(scoped.request, scoped.key, outcome.error, 'handler', refusal);
      return rejected(refusal);
    }
    if (decision.action === 'release' && outcome.kind === 'value' && decision.reason === NOT_STORED) {
      return rejected(new IdempotencyResponseNotStorableError('its status is not stored (storeIf)'));
    }
    return delivered(outcome);
  }

  /** Whether someone consumes events named `event` now (nothing is built for an event nobody reads). */
  private listens(event: ResilienceEventName): boolean {
    const sink = this.deps.events;
    return sink !== undefined && sink.wants?.(event) !== false;
  }

  private emit(
    event: ResilienceEventName,
    request: IdempotentRequest,
    key: string | undefined,
    extra: { status?: number; detail?: string; outcome?: string; error?: unknown; errorType?: string; code?: string; cause?: string } = {},
  ): void {
    // hashing the key and building the event cost more than the rest of a replay: skip both when nobody listens
    if (this.listens(event)) this.send(event, request, key, extra);
  }

  /** {@link emit} for an event its caller already knows someone listens to. */
  private send(
    event: ResilienceEventName,
    request: IdempotentRequest,
    key: string | undefined,
    extra: { status?: number; detail?: string; outcome?: string; error?: unknown; errorType?: string; code?: string; cause?: string },
  ): void {
    this.deps.events!({
      event,
      policy: request.route,
      ...(request.contextType === undefined
        ? { route: request.route }
        : { contextType: request.contextType, operation: request.route, ...(request.attributes === undefined ? {} : { attributes: request.attributes }) }),
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
    // one per route and kind: a cap only matters when routes come from input (a message pattern per tenant)
    if (this.warned.size >= MAX_WARNINGS) return;
    this.warned.add(id);
    this.deps.warn?.(message);
  }
}

/**
 * The problem to answer instead of replaying `response`, when it was kept without its body (too
 * large, or a stream); `undefined` for an ordinary stored response. Adapters call it on a
 * `replay` answer: the original status goes out with the problem as the body.
 * @publicApi
 */
export function notKeptProblemOf(response: StoredResponse, headerName = 'Idempotency-Key'): IdempotencyResponseNotKeptError | undefined {
  const { headers } = response;
  if (headers[STORED_KIND] !== STORED_NOT_KEPT) return undefined;
  const reason = headers[STORED_REASON] === 'unreplayable' ? 'unreplayable' : 'too_large';
  return new IdempotencyResponseNotKeptError(response.status, reason, Number(headers[STORED_BYTES] ?? 0) || 0, headerName);
}

/** Shortest wait a 409 asks for when the route's deadline shortens it: a retry sooner would meet the same 409. */
const MIN_IN_PROGRESS_RETRY_AFTER_MS = 1_000;

/**
 * How long a 409 asks the client to wait: the lease still held, but never more than the route's
 * deadline (the request in flight answers by then, or timed out), and not under one second.
 */
function inProgressRetryAfterMs(remainingLeaseMs: number, deadlineMs: number | undefined): number {
  if (deadlineMs === undefined) return remainingLeaseMs;
  return Math.max(MIN_IN_PROGRESS_RETRY_AFTER_MS, Math.min(remainingLeaseMs, deadlineMs));
}

function rejected(error: IdempotencyError): IdempotencyAnswer {
  return { kind: 'rejected', error };
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return (query === -1 ? url : url.slice(0, query)).slice(0, 2048);
}
