import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA, SSE_METADATA } from '@nestjs/common/constants.js';
import type { BoundMethod } from '../engine/binding/bound-method.js';
import { ResilienceConfigError } from '../core/errors.js';
import { applyProblemHeaders, isProblemDetailsException } from '../http/problem-details.js';
import { runInRequestFrame, type RequestInfoSource } from '../context/context-frame.js';
import { runWithRequestInfo } from '../context/resilience-context.js';
import { httpMethodOf, requestInfoSource } from '../http/request-info.js';
import { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { ResilienceEvents } from '../observability/resilience-events.js';
import { IDEMPOTENT_METADATA, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { IdempotencyCore, notKeptProblemOf, SAFE_METHODS } from '../core/idempotency/idempotency-core.js';
import type { HandlerOutcome, IdempotencyExecution, IdempotentRequest, IdempotentResponse } from '../core/idempotency/idempotency-core.interface.js';
import { resolveIdempotencyOptions, type IdempotentOptions, type ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { IdempotencyResponseNotKeptError } from '../core/idempotency/idempotency-core.errors.js';
import { IdempotencyStore } from '../core/idempotency/idempotency-store.interface.js';
import { InMemoryIdempotencyStore } from '../core/idempotency/in-memory-idempotency.store.js';
import { replayableHeadersOf, replayStoredResponse, responseStatusOf, setResponseHeader } from './stored-response.js';
import { runIdempotentExecution } from './transaction-context.js';

/**
 * The idempotency settings of one `@Idempotent()` route, merged once.
 * @internal
 */
export interface IdempotentRoutePlan {
  readonly options: ResolvedIdempotencyOptions;
  /** `Class.method`, for messages. */
  readonly name: string;
}

/**
 * The Nest side of `@Idempotent()`: reads what the framework-free {@link IdempotencyCore} needs from
 * the Express or Fastify request and response, runs the route's handler (through its resilience
 * pipeline) under the core's decision, and turns the answer into the response: the handler's own
 * outcome, a replay (`Idempotent-Replayed: true`), or a problem from the error mapper.
 * @internal
 */
@Injectable()
export class IdempotentRoutes {
  private readonly core: IdempotencyCore;
  private readonly logger = new Logger('Idempotency');
  private productionWarned = false;

  constructor(
    @Inject(IdempotencyStore) private readonly store: IdempotencyStore,
    @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: ResolvedResilienceOptions,
    private readonly errors: ResilienceErrorMapper,
    @Optional() events?: ResilienceEvents,
  ) {
    this.core = new IdempotencyCore({
      store,
      clock: options.clock,
      events: events?.sink,
      warn: (message) => this.logger.warn(message),
    });
  }

  /**
   * The merged settings of `method` on `classRef`, or `undefined` when it is not `@Idempotent()`.
   * `deadlineMs` is the route's total timeout, when it has one (it sets the default lease).
   */
  planFor(classRef: Function, method: BoundMethod, deadlineMs?: number): IdempotentRoutePlan | undefined {
    const routeOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, method.wrapper) as IdempotentOptions | undefined;
    const classOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, classRef) as IdempotentOptions | undefined;
    if (!routeOptions && !classOptions) return undefined;
    const name = `${classRef.name}.${method.name}`;
    const options = resolveIdempotencyOptions(this.options.idempotency, routeOptions, classOptions, name, deadlineMs);
    if (options.transactional && typeof this.store.runInTransaction !== 'function') {
      throw new ResilienceConfigError(
        `${name} uses @Idempotent({ transactional: true }) but the idempotency store (${this.store.constructor?.name ?? 'custom store'}) has no runInTransaction(). Use TypeOrmIdempotencyStore from nest-resilience/typeorm (forRoot({ idempotency: { store } })), or drop transactional.`,
      );
    }
    return { options, name };
  }

  /**
   * Warns once when an app running with NODE_ENV=production keeps its keys in this process's
   * memory: fine for one instance, wrong for several or for retention that must survive a restart.
   */
  private warnInProduction(): void {
    const { store } = this;
    if (this.productionWarned || process.env.NODE_ENV !== 'production' || !(store instanceof InMemoryIdempotencyStore)) return;
    this.productionWarned = true;
    this.logger.warn(
      `@Idempotent() routes keep their keys in the in-memory store with NODE_ENV=production: records live in this process only (lost on restart, not shared between instances, so a retry that reaches another instance runs again) and are bounded by maxRecords ${store.maxRecords} / maxBytes ${store.maxBytes} (completed keys are evicted beyond that and run again if retried). ` +
        'With several instances or a retention that must survive restarts, use TypeOrmIdempotencyStore (nest-resilience/typeorm) or RedisIdempotencyStore (nest-resilience/redis): forRoot({ idempotency: { store } }).',
    );
  }

  /** Whether idempotency applies to `request` at all (GET, HEAD and OPTIONS are never affected). */
  applies(request: unknown): boolean {
    const method = (request as { method?: unknown }).method;
    return !SAFE_METHODS.has(String(method ?? 'GET').toUpperCase());
  }

  /** Start-up checks of a route: a stream or a hand-written response cannot be stored and replayed. */
  validateRoute(classRef: Function, method: BoundMethod): void {
    const plan = this.planFor(classRef, method);
    if (!plan) return;
    const where = `${classRef.name}.${method.name}`;
    this.warnInProduction();
    const { store } = this;
    if (store instanceof InMemoryIdempotencyStore && plan.options.maxResponseBytes > store.maxBytes) {
      throw new ResilienceConfigError(
        `${where} keeps responses of up to maxResponseBytes (${plan.options.maxResponseBytes}) bytes, more than the in-memory store holds in all (maxBytes ${store.maxBytes}); lower maxResponseBytes on the route or in forRoot({ idempotency }), or raise maxBytes: new InMemoryIdempotencyStore({ maxBytes }).`,
      );
    }
    if (Reflect.getMetadata(SSE_METADATA, method.wrapper)) {
      throw new ResilienceConfigError(`${where} is @Idempotent() and @Sse(): an event stream cannot be stored or replayed. Remove @Idempotent() from it.`);
    }
    if (handlesResponseItself(classRef, method.name)) {
      throw new ResilienceConfigError(
        `${where} is @Idempotent() but writes the response itself through @Res()/@Next(), so its response cannot be stored or replayed. Use @Res({ passthrough: true }) and return the body, or remove @Idempotent().`,
      );
    }
  }

  /** Runs one request of an idempotent route; resolves to what the handler's caller (Nest) sends. */
  async run(
    plan: IdempotentRoutePlan,
    request: any,
    response: any,
    run: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>,
  ): Promise<unknown> {
    const source = requestInfoSource(request);
    const transactional = plan.options.transactional;
    // Transactional: the request scope starts outside the transaction, so work queued when it
    // commits (a background job) still tags its events and outgoing calls with this request's id.
    // Otherwise only the handler needs it: a replay or a refusal runs no user code and enters no scope.
    const handle = transactional
      ? (execution: IdempotencyExecution | undefined) => (execution === undefined ? run(undefined) : runIdempotentExecution(execution, () => run(execution)))
      : (execution: IdempotencyExecution | undefined) => runInRequestFrame(source, execution, () => run(execution));
    const execute = () => this.core.execute(new HttpIdempotentRequest(plan, request, source), responseAccess(response), handle);
    const answer = await (transactional ? runWithRequestInfo(source, execute) : execute());
    switch (answer.kind) {
      case 'delivered': {
        const { outcome } = answer;
        if (outcome.kind === 'error') throw this.withHeaders(response, outcome.error);
        return outcome.emissions === 0 ? undefined : outcome.value;
      }
      case 'replay': {
        setResponseHeader(response, 'Idempotent-Replayed', 'true');
        const replay = replayStoredResponse(response, answer.response);
        const notKept = notKeptProblemOf(answer.response, plan.options.headerName);
        if (notKept) return this.notKept(response, notKept);
        if (replay.kind === 'error') throw this.withHeaders(response, replay.error);
        return replay.value;
      }
      case 'rejected':
        throw this.withHeaders(response, this.errors.map(answer.error));
    }
  }

  /**
   * The replay of a response kept without its body: the original status (already set) with the
   * mapped problem as the body, not as an exception: the original was a success.
   */
  private notKept(response: unknown, error: IdempotencyResponseNotKeptError): unknown {
    const mapped = this.errors.map(error);
    // a custom error mapper that answers something else is obeyed
    if (!isProblemDetailsException(mapped) || mapped.getStatus() !== error.status) throw this.withHeaders(response, mapped);
    applyProblemHeaders(response, mapped);
    return mapped.problem;
  }

  /** Same media type and headers the first time as on replay, whoever raised the problem. */
  private withHeaders(response: unknown, error: unknown): unknown {
    if (isProblemDetailsException(error)) applyProblemHeaders(response, error);
    return error;
  }
}

/**
 * What the core reads of one Express or Fastify request. The route and the request id are worked
 * out only when an event or a warning reads them (on Express each costs slow property lookups).
 */
class HttpIdempotentRequest implements IdempotentRequest {
  readonly name: string;
  readonly options: ResolvedIdempotencyOptions;
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: unknown;
  readonly hasUser: boolean;

  constructor(
    plan: IdempotentRoutePlan,
    readonly request: any,
    private readonly source: RequestInfoSource,
  ) {
    this.name = plan.name;
    this.options = plan.options;
    this.method = httpMethodOf(request);
    this.url = request.originalUrl ?? request.raw?.url ?? request.url ?? '/';
    this.headers = request.headers ?? {};
    this.body = request.body;
    this.hasUser = request.user !== undefined && request.user !== null;
  }

  get route(): string {
    // requestInfoSource always works one out
    return this.source.info().route!;
  }

  get requestId(): string | undefined {
    return this.source.info().requestId;
  }
}

function responseAccess(response: any): IdempotentResponse {
  return {
    status: () => responseStatusOf(response),
    replayableHeaders: (allowList) => replayableHeadersOf(response, isSet(allowList) ? allowList : new Set(allowList)),
    setHeader: (name, value) => setResponseHeader(response, name, value),
  };
}

function isSet(names: ReadonlySet<string> | readonly string[]): names is ReadonlySet<string> {
  return names instanceof Set;
}

function handlesResponseItself(controller: Function, name: string | symbol): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, name) ?? {}) as Record<string, unknown>;
  const usesResponse = Object.keys(args).some((key) => key.startsWith('1:') || key.startsWith('2:'));
  return usesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, name);
}
