import {
  HttpException,
  Inject,
  Injectable,
  Logger,
  Optional,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
  type OnModuleInit,
} from '@nestjs/common';
import { PATH_METADATA, RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA, SSE_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer, Reflector } from '@nestjs/core';
import { createHash } from 'node:crypto';
import { EMPTY, Observable, defer, mergeAll, of } from 'rxjs';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { ResilienceConfigError, describeError } from '../core/errors.js';
import { errorTypeOf, type ResilienceEventName } from '../core/events.js';
import { applyProblemHeaders, isProblemDetailsException, type ProblemDetailsException } from '../http/problem-details.js';
import { httpRequestInfo, requestInfoSource } from '../http/request-info.js';
import { runWithRequestInfo } from '../context/resilience-context.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { ResilienceEvents } from '../observability/resilience-events.js';
import { IDEMPOTENT_METADATA, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { requestFingerprint } from './fingerprint.js';
import { parseIdempotencyKey, validateIdempotencyKey, type IdempotencyKeyParseResult } from './idempotency-key.js';
import {
  resolveIdempotencyOptions,
  type IdempotentOptions,
  type ResolvedIdempotencyOptions,
} from './idempotency-options.interface.js';
import {
  IdempotencyStore,
  type IdempotencyClaim,
  type IdempotencyClaimResult,
  type IdempotencyLease,
  type StoredResponse,
  type TransactionalOutcome,
} from './idempotency-store.interface.js';
import {
  idempotencyKeyInvalid,
  idempotencyKeyMissing,
  idempotencyKeyReused,
  idempotencyRequestInProgress,
  idempotencyResponseNotStorable,
  idempotencyStoreUnavailable,
} from './idempotency.errors.js';
import { isIdempotentHandler, SAFE_METHODS } from './idempotent.decorator.js';
import { InMemoryIdempotencyStore } from './in-memory-idempotency.store.js';
import {
  encodeError,
  encodeValue,
  replayableHeadersOf,
  replayStoredResponse,
  responseStatusOf,
  setResponseHeader,
} from './stored-response.js';
import { idempotencyContextOf, runIdempotentExecution, type IdempotencyExecution } from './transaction-context.js';

/** `Retry-After` of a 503 answered while the store is unreachable. */
const STORE_UNAVAILABLE_RETRY_AFTER_MS = 1_000;

/** Release reasons that, in transactional mode, mean "the handler's writes were rolled back although it succeeded". */
const NOT_STORABLE_REASONS = new Set(['not_stored', 'unreplayable', 'too_large']);

/** Longest scope stored as is; longer scopes are replaced by their sha256 (the column holds 255). */
const MAX_SCOPE_LENGTH = 255;

/** What the handler (behind inner interceptors and pipes) produced. */
type Outcome =
  | { readonly kind: 'value'; readonly value: unknown; readonly emissions: number }
  | { readonly kind: 'error'; readonly error: unknown };

/** What to do with the key once the outcome is known. */
type Decision =
  | { readonly action: 'store'; readonly response: StoredResponse }
  | { readonly action: 'release'; readonly reason: string; readonly detail: string; readonly warn: boolean };

/** One `@Idempotent()` route: its merged options and names, computed once. */
interface RoutePlan {
  readonly options: ResolvedIdempotencyOptions;
  /** `Class.method`, for messages. */
  readonly name: string;
  /** Whether the handler carries the wrapper that reports "handler entered". */
  readonly tracked: boolean;
}

/** What one request is about, gathered before the claim. */
interface RequestScope {
  readonly plan: RoutePlan;
  readonly request: any;
  readonly response: any;
  /** `METHOD /route/template`: the `policy` of events. */
  readonly route: string;
  /** Request id (pino-http `req.id` or `X-Request-Id`): this interceptor runs outside the resilience context. */
  readonly requestId?: string;
  readonly key: string;
  readonly claim: IdempotencyClaim;
}

interface Heartbeat {
  /** Whether a heartbeat found the lease taken over (already reported). */
  readonly lost: boolean;
  stop(): void;
}

/** The options this interceptor reads from `RESOLVED_RESILIENCE_OPTIONS`. */
type InterceptorOptions = Partial<Pick<ResolvedResilienceOptions, 'idempotency' | 'clock' | 'problemTypeBase' | 'enabled'>>;

/**
 * Implements `@Idempotent()` for HTTP routes: reads and validates the key, scopes and fingerprints
 * the request, claims the key in the {@link IdempotencyStore}, then replays a stored response,
 * answers 409/422, or runs the handler under a heartbeat-renewed lease and stores its outcome.
 *
 * `ResilienceModule` binds it globally around the {@link ResilienceInterceptor} (one
 * `APP_INTERCEPTOR` runs both, this one outermost), so a replay runs nothing else and
 * retries/timeouts happen inside one claim (DESIGN §3). Errors are RFC 9457
 * problem+json (`idempotency_key_missing`, `idempotency_key_invalid`, `idempotency_request_in_progress`,
 * `idempotency_key_reused`, `idempotency_store_unavailable`).
 *
 * Storage policy: outcomes of the handler with `storeIf(status)` (default status < 500), thrown
 * `HttpException`s included, are stored and replayed. Server errors, crashes, errors raised before
 * the handler body started (guards, pipes), values the handler did not produce (a fallback after
 * it failed), streams and other unreplayable results, and bodies over `maxStoredBodyBytes` are
 * delivered but not stored: the key is released so a retry with the same key runs again, and a
 * warning is logged for the last three. Never a silent failure.
 * @publicApi
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor, OnModuleInit {
  private readonly logger = new Logger('Idempotency');
  private readonly store: IdempotencyStore;
  private readonly clock: Clock;
  private readonly plans = new WeakMap<Function, WeakMap<Function, RoutePlan | null>>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly reflector: Reflector,
    @Optional() @Inject(IdempotencyStore) store?: IdempotencyStore,
    @Optional() @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: InterceptorOptions = {},
    @Optional() private readonly events?: ResilienceEvents,
    @Optional() private readonly modules?: ModulesContainer,
  ) {
    this.options ??= {};
    this.clock = this.options.clock ?? systemClock;
    this.store = store ?? new InMemoryIdempotencyStore({ clock: this.clock });
  }

  /** Validates every `@Idempotent()` route at start-up, so a bad configuration stops the app with a clear message. */
  onModuleInit(): void {
    if (!this.modules || this.options.enabled === false) return;
    for (const module of this.modules.values()) {
      for (const wrapper of module.controllers.values()) {
        const controller = wrapper.metatype as Function | undefined;
        if (typeof controller === 'function') this.validateController(controller);
      }
    }
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http' || this.options.enabled === false) return next.handle();
    const plan = this.planFor(context.getClass(), context.getHandler());
    if (!plan) return next.handle();
    const http = context.switchToHttp();
    const request = http.getRequest();
    const method = String(request.method ?? 'GET').toUpperCase();
    if (SAFE_METHODS.has(method)) return next.handle();
    const handled = defer(() => this.handle(plan, request, http.getResponse(), method, next)).pipe(mergeAll());
    // The request scope starts here, outside the transaction: work queued when it commits (a
    // background job) still tags its events and outgoing calls with this request's id.
    const source = requestInfoSource(request);
    return new Observable<unknown>((subscriber) => runWithRequestInfo(source, () => handled.subscribe(subscriber)));
  }

  private async handle(plan: RoutePlan, request: any, response: any, method: string, next: CallHandler): Promise<Observable<unknown>> {
    const { options } = plan;
    const { route, requestId } = httpRequestInfo(request);
    const parsed = this.readKey(request, options);
    if (!parsed) {
      if (!options.required) return next.handle();
      this.emit('idempotency_rejected', { route, requestId }, undefined, options, { status: 400, detail: 'missing' });
      return this.reject(response, idempotencyKeyMissing(options.headerName, this.problemOptions()));
    }
    if (!parsed.ok) {
      this.emit('idempotency_rejected', { route, requestId }, undefined, options, { status: 400, detail: `invalid: ${parsed.reason}` });
      return this.reject(response, idempotencyKeyInvalid(options.headerName, parsed.reason, this.problemOptions()));
    }
    const key = parsed.key;
    setResponseHeader(response, options.headerName, key);
    const scope = await this.scopeOf(request, plan, route);
    const url: string = request.originalUrl ?? request.raw?.url ?? request.url ?? '/';
    const claim: IdempotencyClaim = {
      namespace: options.namespace,
      scope,
      key,
      fingerprint: requestFingerprint({ scope, method, url, body: request.body }),
      method,
      path: pathOf(url),
      leaseMs: options.lease,
      ttlMs: options.ttl,
    };
    const scoped: RequestScope = { plan, request, response, route, requestId, key, claim };
    return options.transactional ? this.runTransactional(scoped, next) : this.runLeased(scoped, next);
  }

  /** Lease mode: claim, run under a heartbeat, then complete or release (compare-and-set on the owner). */
  private async runLeased(scoped: RequestScope, next: CallHandler): Promise<Observable<unknown>> {
    let result: IdempotencyClaimResult;
    try {
      result = await this.store.claim(scoped.claim);
    } catch (error) {
      return this.storeUnavailable(scoped, error, next);
    }
    if (result.state !== 'acquired') return this.answerExisting(scoped, result);
    const { lease } = result;
    if (result.takeover) this.emit('idempotency_takeover', scoped, scoped.key, scoped.plan.options, { detail: `fence ${lease.fence}` });
    const execution: IdempotencyExecution = {
      handlerEntered: false,
      running: 0,
      handlerSucceeded: false,
      info: idempotencyContextOf(scoped.key, scoped.claim.scope, lease.recordId, lease.fence),
    };
    const heartbeat = this.startHeartbeat(scoped, lease);
    const outcome = await this.runHandler(execution, next);
    const decision = this.decide(scoped, outcome, execution, false);
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
    return deliver(scoped, outcome);
  }

  /** Transactional mode: the store claims, runs the handler and stores the response in one transaction. */
  private async runTransactional(scoped: RequestScope, next: CallHandler): Promise<Observable<unknown>> {
    const runInTransaction = this.store.runInTransaction?.bind(this.store);
    if (!runInTransaction) throw new ResilienceConfigError(transactionalUnsupportedMessage(scoped.plan.name, this.store));
    let workStarted = false;
    let local: { outcome: Outcome; decision: Decision; rollback?: Error } | undefined;
    let result: Awaited<ReturnType<typeof runInTransaction>>;
    try {
      result = await runInTransaction(scoped.claim, async (transaction, lease): Promise<TransactionalOutcome<undefined>> => {
        workStarted = true;
        const execution: IdempotencyExecution = {
          handlerEntered: false,
          running: 0,
          handlerSucceeded: false,
          transaction,
          info: idempotencyContextOf(scoped.key, scoped.claim.scope, lease.recordId, lease.fence),
        };
        const outcome = await this.runHandler(execution, next);
        const decision = this.decide(scoped, outcome, execution, true);
        if (decision.action === 'store') {
          local = { outcome, decision };
          return { action: 'store', response: decision.response, value: undefined };
        }
        const rollback = new Error(`Rolled back: ${decision.detail}.`);
        local = { outcome, decision, rollback };
        return { action: 'rollback', error: rollback };
      });
    } catch (error) {
      if (!workStarted) return this.storeUnavailable(scoped, error, next);
      if (!local?.rollback || error !== local.rollback) {
        // The handler ran but the transaction did not commit: its writes are gone, so a retry must run it again.
        this.emit('idempotency_store_error', scoped, scoped.key, scoped.plan.options, { error, errorType: errorTypeOf(error), detail: 'commit' });
        this.logger.warn(`The transaction of ${scoped.route} failed after the handler ran (${describeError(error)}); its writes were rolled back and the client is told to retry.`);
        return this.reject(scoped.response, idempotencyStoreUnavailable(STORE_UNAVAILABLE_RETRY_AFTER_MS, error, this.problemOptions()));
      }
    }
    if (local === undefined) return this.answerExisting(scoped, result! as Exclude<IdempotencyClaimResult, { state: 'acquired' }>);
    const { outcome, decision } = local as { outcome: Outcome; decision: Decision };
    if (decision.action === 'release') this.reportRelease(scoped, decision);
    this.emitExecuted(scoped, outcome, decision);
    if (decision.action === 'release' && outcome.kind === 'value' && NOT_STORABLE_REASONS.has(decision.reason)) {
      return this.reject(scoped.response, idempotencyResponseNotStorable(decision.detail, this.problemOptions()));
    }
    return deliver(scoped, outcome);
  }

  /** Replays a completed response, or answers 422 (other request) / 409 (still running). */
  private answerExisting(scoped: RequestScope, result: Exclude<IdempotencyClaimResult, { state: 'acquired' }>): Observable<unknown> {
    const { options } = scoped.plan;
    if (!result.sameRequest) {
      this.emit('idempotency_mismatch', scoped, scoped.key, options, { status: 422 });
      return this.reject(scoped.response, idempotencyKeyReused(options.headerName, this.problemOptions()));
    }
    if (result.state === 'in_progress') {
      this.emit('idempotency_conflict', scoped, scoped.key, options, { status: 409 });
      return this.reject(scoped.response, idempotencyRequestInProgress(options.headerName, result.retryAfterMs, this.problemOptions()));
    }
    this.emit('idempotency_replayed', scoped, scoped.key, options, { status: result.response.status });
    setResponseHeader(scoped.response, 'Idempotent-Replayed', 'true');
    const replay = replayStoredResponse(scoped.response, result.response);
    if (replay.kind === 'error') throw replay.error;
    return of(replay.value);
  }

  /** Fail closed (503, handler not run) or, with `failOpen`, run the handler without idempotency. */
  private storeUnavailable(scoped: RequestScope, error: unknown, next: CallHandler): Observable<unknown> {
    const { options } = scoped.plan;
    this.emit('idempotency_store_error', scoped, scoped.key, options, { error, errorType: errorTypeOf(error), detail: 'claim', status: options.failOpen ? undefined : 503 });
    if (options.failOpen) {
      this.logger.warn(`The idempotency store is unreachable (${describeError(error)}); ${scoped.route} runs without idempotency because failOpen is set.`);
      return next.handle();
    }
    this.logger.warn(`The idempotency store is unreachable (${describeError(error)}); ${scoped.route} answered 503 without running the handler.`);
    return this.reject(scoped.response, idempotencyStoreUnavailable(STORE_UNAVAILABLE_RETRY_AFTER_MS, error, this.problemOptions()));
  }

  /** Subscribes to the handler chain inside the execution's async context and collects its outcome. */
  private runHandler(execution: IdempotencyExecution, next: CallHandler): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let emissions = 0;
      let last: unknown;
      // Both the call to handle() (which binds the async context it is called in) and the
      // subscription (inner interceptors that defer their work start it from here) run inside the
      // execution's context, so the handler wrapper sees `execution` however the chain is built.
      runIdempotentExecution(execution, () => next.handle().subscribe({
        next: (value) => {
          emissions++;
          last = value;
        },
        error: (error: unknown) => resolve({ kind: 'error', error }),
        complete: () => resolve({ kind: 'value', value: last, emissions }),
      }));
    });
  }

  /** Whether the outcome is stored (and what), or the key released (and why). */
  private decide(scoped: RequestScope, outcome: Outcome, execution: IdempotencyExecution, transactional: boolean): Decision {
    const { options, tracked } = scoped.plan;
    const entered = execution.handlerEntered || !tracked;
    const status = outcome.kind === 'error' ? statusOf(outcome.error) : responseStatusOf(scoped.response);
    if (!entered) {
      return release('before_handler', `the ${outcome.kind === 'error' ? 'error' : 'response'} was produced before the handler started (guard, pipe or interceptor)`, false);
    }
    if (outcome.kind === 'error') {
      if (transactional) return release('error', `the handler failed with ${errorTypeOf(outcome.error)}; its writes were rolled back`, false);
      if (!(outcome.error instanceof HttpException)) return release('crash', `the handler failed with ${errorTypeOf(outcome.error)}`, false);
      if (!options.storeIf(status!, outcome.error)) return release('not_stored', `status ${status} is not stored (storeIf)`, false);
      const encoded = encodeError(outcome.error, replayableHeadersOf(scoped.response, options.replayHeaders), options.maxStoredBodyBytes);
      return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
    }
    if (tracked && !execution.handlerSucceeded) {
      return release('not_handler_result', 'the value was not produced by the handler (it failed and a fallback answered)', false);
    }
    if (!options.storeIf(status!)) return release('not_stored', `status ${status} is not stored (storeIf)`, transactional);
    const headers = replayableHeadersOf(scoped.response, options.replayHeaders);
    const encoded = encodeValue(outcome.value, outcome.emissions, status!, headers, options.maxStoredBodyBytes);
    return encoded.storable ? { action: 'store', response: encoded.response } : release(encoded.reason, encoded.detail, true);
  }

  private reportRelease(scoped: RequestScope, decision: Extract<Decision, { action: 'release' }>): void {
    if (!decision.warn) return;
    const fix =
      decision.reason === 'too_large'
        ? 'raise maxStoredBodyBytes or return a smaller body'
        : 'return a JSON-serialisable value (not a stream, file, buffer or multi-value Observable)';
    const consequence = scoped.plan.options.transactional
      ? 'its writes were rolled back and the client got a 500'
      : 'the response was delivered but not stored, so a retry with the same key runs the handler again';
    this.warnOnce(`${decision.reason}:${scoped.route}`, `${scoped.route} (${scoped.plan.name}): ${decision.detail}; ${consequence}. To make it replayable, ${fix}.`);
  }

  private emitExecuted(scoped: RequestScope, outcome: Outcome, decision: Decision): void {
    const status = outcome.kind === 'error' ? statusOf(outcome.error) : responseStatusOf(scoped.response);
    if (decision.action === 'release') {
      this.emit('idempotency_released', scoped, scoped.key, scoped.plan.options, { status, outcome: decision.reason, detail: decision.detail });
    }
    this.emit('idempotency_executed', scoped, scoped.key, scoped.plan.options, {
      status,
      outcome: decision.action === 'store' ? 'stored' : 'released',
      ...(outcome.kind === 'error' ? { errorType: errorTypeOf(outcome.error) } : {}),
    });
  }

  private async complete(scoped: RequestScope, lease: IdempotencyLease, response: StoredResponse): Promise<void> {
    try {
      const stored = await this.store.complete(lease, response, scoped.plan.options.ttl);
      if (!stored) this.lockLost(scoped, 'complete');
    } catch (error) {
      // The side effect happened: deliver the response and let the lease run out; never delete.
      this.emit('idempotency_store_error', scoped, scoped.key, scoped.plan.options, { error, errorType: errorTypeOf(error), detail: 'complete' });
      this.logger.warn(`The response of ${scoped.route} could not be stored (${describeError(error)}); it was delivered, and a retry after the lease (${scoped.plan.options.lease} ms) runs the handler again.`);
    }
  }

  private async release(scoped: RequestScope, lease: IdempotencyLease): Promise<void> {
    try {
      const released = await this.store.release(lease);
      if (!released) this.lockLost(scoped, 'release');
    } catch (error) {
      this.emit('idempotency_store_error', scoped, scoped.key, scoped.plan.options, { error, errorType: errorTypeOf(error), detail: 'release' });
      this.logger.warn(`The key of ${scoped.route} could not be released (${describeError(error)}); retries get 409 until the lease (${scoped.plan.options.lease} ms) ends.`);
    }
  }

  private lockLost(scoped: RequestScope, operation: string): void {
    this.emit('idempotency_lock_lost', scoped, scoped.key, scoped.plan.options, { detail: operation });
    this.logger.warn(`${scoped.route} lost its idempotency lease before ${operation} (another request took the key over after the lease expired); this request's ${operation} changed nothing. Raise the lease if handlers legitimately run longer.`);
  }

  /** Renews the lease every `lease / 3` on the module clock until stopped or lost. */
  private startHeartbeat(scoped: RequestScope, lease: IdempotencyLease): Heartbeat {
    const leaseMs = scoped.plan.options.lease;
    const interval = Math.max(1, Math.floor(leaseMs / 3));
    let timer: TimerHandle | undefined;
    let stopped = false;
    let lost = false;
    const schedule = () => {
      timer = this.clock.setTimeout(beat, interval);
      (timer as { unref?: () => void } | undefined)?.unref?.();
    };
    const beat = () => {
      timer = undefined;
      if (stopped) return;
      this.store.heartbeat(lease, leaseMs).then(
        (renewed) => {
          if (stopped) return;
          if (renewed) return schedule();
          lost = true;
          this.lockLost(scoped, 'heartbeat');
        },
        (error: unknown) => {
          if (stopped) return;
          this.emit('idempotency_store_error', scoped, scoped.key, scoped.plan.options, { error, errorType: errorTypeOf(error), detail: 'heartbeat' });
          schedule();
        },
      );
    };
    schedule();
    return {
      get lost() {
        return lost;
      },
      stop: () => {
        stopped = true;
        if (timer !== undefined) this.clock.clearTimeout(timer);
        timer = undefined;
      },
    };
  }

  private readKey(request: any, options: ResolvedIdempotencyOptions): IdempotencyKeyParseResult | undefined {
    if (options.keyResolver) {
      const key = options.keyResolver(request);
      return key === undefined || key === null ? undefined : validateIdempotencyKey(String(key));
    }
    const value = request.headers?.[options.header];
    if (value === undefined) return undefined;
    if (Array.isArray(value)) return value.length === 1 ? parseIdempotencyKey(value[0]) : { ok: false, reason: 'the header was sent several times; send exactly one key' };
    return parseIdempotencyKey(String(value));
  }

  private async scopeOf(request: any, plan: RoutePlan, route: string): Promise<string> {
    const { scope } = plan.options;
    if (typeof scope === 'function') {
      const value = await scope(request);
      const text = value === undefined || value === null ? '' : String(value);
      return text.length > MAX_SCOPE_LENGTH ? createHash('sha256').update(text).digest('hex') : text;
    }
    if (scope === undefined && request.user !== undefined && request.user !== null) {
      this.warnOnce(
        `scope:${route}`,
        `${route} (${plan.name}) serves authenticated users but its idempotency keys are global: one user's key can replay another user's response. Set @Idempotent({ scope: (req) => req.user.id }) (or forRoot({ idempotency: { scope } })), or scope: false if global keys are intended.`,
      );
    }
    return '';
  }

  /** The merged options of a route, computed once; `null` when the route is not `@Idempotent()`. */
  private planFor(controller: Function, handler: Function): RoutePlan | undefined {
    let byHandler = this.plans.get(controller);
    if (!byHandler) this.plans.set(controller, (byHandler = new WeakMap()));
    let plan = byHandler.get(handler);
    if (plan === undefined) {
      plan = this.createPlan(controller, handler);
      byHandler.set(handler, plan);
    }
    return plan ?? undefined;
  }

  private createPlan(controller: Function, handler: Function): RoutePlan | null {
    const routeOptions = this.reflector.get<IdempotentOptions | undefined>(IDEMPOTENT_METADATA, handler);
    const classOptions = this.reflector.get<IdempotentOptions | undefined>(IDEMPOTENT_METADATA, controller);
    if (!routeOptions && !classOptions) return null;
    const name = `${controller.name}.${handler.name}`;
    const options = resolveIdempotencyOptions(this.options.idempotency, routeOptions, classOptions, name);
    if (options.transactional && typeof this.store.runInTransaction !== 'function') {
      throw new ResilienceConfigError(transactionalUnsupportedMessage(name, this.store));
    }
    const tracked = isIdempotentHandler(handler);
    if (!tracked) {
      this.warnOnce(
        `untracked:${name}`,
        `${name} is @Idempotent() but its handler is not the wrapper installed by @Idempotent() (another decorator replaced the method without copying its properties); errors raised before the handler runs (a ValidationPipe 400) will be stored like handler errors.`,
      );
    }
    return { options, name, tracked };
  }

  private validateController(controller: Function): void {
    const classOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, controller) as IdempotentOptions | undefined;
    const seen = new Set<string | symbol>(['constructor']);
    for (let level = controller.prototype; level && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
      for (const name of Reflect.ownKeys(level)) {
        if (seen.has(name)) continue;
        seen.add(name);
        const handler = Object.getOwnPropertyDescriptor(level, name)?.value;
        if (typeof handler !== 'function' || !Reflect.hasMetadata(PATH_METADATA, handler)) continue;
        const routeOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, handler) as IdempotentOptions | undefined;
        if (!routeOptions && !(classOptions && isIdempotentHandler(handler))) continue;
        const where = `${controller.name}.${String(name)}`;
        if (Reflect.getMetadata(SSE_METADATA, handler)) {
          throw new ResilienceConfigError(`${where} is @Idempotent() and @Sse(): an event stream cannot be stored or replayed. Remove @Idempotent() from it.`);
        }
        if (handlesResponseItself(controller, name)) {
          throw new ResilienceConfigError(`${where} is @Idempotent() but writes the response itself through @Res()/@Next(), so its response cannot be stored or replayed. Use @Res({ passthrough: true }) and return the body, or remove @Idempotent().`);
        }
        this.planFor(controller, handler);
      }
    }
  }

  private reject(response: any, exception: ProblemDetailsException): never {
    applyProblemHeaders(response, exception);
    throw exception;
  }

  private problemOptions() {
    return { typeBase: this.options.problemTypeBase };
  }

  private emit(
    event: ResilienceEventName,
    { route, requestId }: { readonly route: string; readonly requestId?: string },
    key: string | undefined,
    options: ResolvedIdempotencyOptions,
    extra: { status?: number; detail?: string; outcome?: string; error?: unknown; errorType?: string } = {},
  ): void {
    if (!this.events) return;
    this.events.emit({
      event,
      policy: route,
      route,
      ...(requestId === undefined ? {} : { requestId }),
      ...(key === undefined ? {} : { key: options.logKeys ? key : redactKey(key) }),
      ...extra,
    });
  }

  private warnOnce(id: string, message: string): void {
    if (this.warned.has(id)) return;
    this.warned.add(id);
    this.logger.warn(message);
  }
}

function release(reason: string, detail: string, warn: boolean): Decision {
  return { action: 'release', reason, detail, warn };
}

function deliver(scoped: RequestScope, outcome: Outcome): Observable<unknown> {
  if (outcome.kind === 'error') {
    // Same media type and headers the first time as on replay, whoever raised the problem.
    if (isProblemDetailsException(outcome.error)) applyProblemHeaders(scoped.response, outcome.error);
    throw outcome.error;
  }
  // An Observable that completed without a value stays empty: Nest reports it as it would without us.
  return outcome.emissions === 0 ? EMPTY : of(outcome.value);
}

function statusOf(error: unknown): number | undefined {
  return error instanceof HttpException ? error.getStatus() : 500;
}

/** First 12 hex characters of the key's sha256: enough to correlate log lines, useless to replay. */
function redactKey(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return (query === -1 ? url : url.slice(0, query)).slice(0, 2048);
}

function handlesResponseItself(controller: Function, name: string | symbol): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, name) ?? {}) as Record<string, unknown>;
  const usesResponse = Object.keys(args).some((key) => key.startsWith('1:') || key.startsWith('2:'));
  return usesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, name);
}

function transactionalUnsupportedMessage(where: string, store: IdempotencyStore): string {
  return `${where} uses @Idempotent({ transactional: true }) but the idempotency store (${store.constructor?.name ?? 'custom store'}) has no runInTransaction(). Use TypeOrmIdempotencyStore from nest-resilience/typeorm (forRoot({ idempotency: { store } })), or drop transactional.`;
}
