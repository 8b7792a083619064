import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { BoundMethod } from './binding/bound-method.js';
import type { ContextAdapter, IdempotentCall } from '../contexts/context-adapter.js';
import { httpContext } from '../contexts/http.context.js';
import { runInRequestFrame } from '../context/context-frame.js';
import { runWithRequestInfo } from '../context/resilience-context.js';
import { ResilienceConfigError } from '../core/errors.js';
import { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { ResilienceEvents } from '../observability/resilience-events.js';
import { IDEMPOTENT_METADATA, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { IdempotencyCore, notKeptProblemOf } from '../core/idempotency/idempotency-core.js';
import type { HandlerOutcome, IdempotencyAnswer, IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';
import { resolveIdempotencyOptions, type IdempotentOptions, type ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import { IdempotencyStore } from '../core/idempotency/idempotency-store.interface.js';
import { InMemoryIdempotencyStore } from '../core/idempotency/in-memory-idempotency.store.js';
import { waitWhileInFlight } from '../core/idempotency/in-flight-wait.js';
import { runIdempotentExecution } from '../idempotency/transaction-context.js';

/**
 * The idempotency settings of one `@Idempotent()` handler, merged once.
 * @internal
 */
export interface IdempotentRoutePlan {
  readonly options: ResolvedIdempotencyOptions;
  /** `Class.method`, for messages. */
  readonly name: string;
}

/**
 * The Nest side of `@Idempotent()`: runs one call of an idempotent handler (through its
 * resilience pipeline) under the decision of the framework-free {@link IdempotencyCore}, in any
 * context, through the {@link IdempotentCall} its context adapter built (what the core reads,
 * how a stored outcome is answered again, how a refusal reaches the caller). On HTTP a duplicate
 * of a request in flight is refused (409); a message or an event waits for it instead.
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

  /** Whether `method` (or its class) carries `@Idempotent()`. */
  isIdempotent(classRef: Function, method: BoundMethod): boolean {
    return Reflect.getMetadata(IDEMPOTENT_METADATA, method.wrapper) !== undefined || Reflect.getMetadata(IDEMPOTENT_METADATA, classRef) !== undefined;
  }

  /**
   * The merged settings of `method` on `classRef` in its context (an HTTP route unless `adapter`
   * says otherwise), or `undefined` when it is not `@Idempotent()`. `deadlineMs` is the route's
   * total timeout, when it has one (it sets the default lease and bounds a 409's Retry-After).
   */
  planFor(classRef: Function, method: BoundMethod, adapter: ContextAdapter = httpContext, deadlineMs?: number): IdempotentRoutePlan | undefined {
    const routeOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, method.wrapper) as IdempotentOptions | undefined;
    const classOptions = Reflect.getMetadata(IDEMPOTENT_METADATA, classRef) as IdempotentOptions | undefined;
    if (!routeOptions && !classOptions) return undefined;
    const name = `${classRef.name}.${method.name}`;
    const options = adapter.idempotencyOptions(resolveIdempotencyOptions(this.options.idempotency, routeOptions, classOptions, name, deadlineMs));
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

  /**
   * Start-up checks of an `@Idempotent()` handler that hold in every context (the context's own,
   * such as a stream on HTTP, are its adapter's): the store can hold what it keeps.
   */
  validate(classRef: Function, method: BoundMethod, plan: IdempotentRoutePlan): void {
    this.warnInProduction();
    const { store } = this;
    if (store instanceof InMemoryIdempotencyStore && plan.options.maxResponseBytes > store.maxBytes) {
      throw new ResilienceConfigError(
        `${classRef.name}.${method.name} keeps responses of up to maxResponseBytes (${plan.options.maxResponseBytes}) bytes, more than the in-memory store holds in all (maxBytes ${store.maxBytes}); lower maxResponseBytes on the route or in forRoot({ idempotency }), or raise maxBytes: new InMemoryIdempotencyStore({ maxBytes }).`,
      );
    }
  }

  /** Runs one call of an idempotent handler; resolves to what the handler's caller (Nest) gets. */
  async run(plan: IdempotentRoutePlan, call: IdempotentCall, run: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>): Promise<unknown> {
    const { source } = call;
    const transactional = plan.options.transactional;
    const toStorable = call.outcomeError?.bind(call);
    const outcomeOf =
      toStorable === undefined
        ? run
        : (execution: IdempotencyExecution | undefined) =>
            run(execution).then((outcome): HandlerOutcome => (outcome.kind === 'error' ? { kind: 'error', error: toStorable(outcome.error) } : outcome));
    // Transactional: the request scope starts outside the transaction, so work queued when it
    // commits (a background job) still tags its events and outgoing calls with this request's id.
    // Otherwise only the handler needs it: a replay or a refusal runs no user code and enters no scope.
    const handle = transactional
      ? (execution: IdempotencyExecution | undefined) => (execution === undefined ? outcomeOf(undefined) : runIdempotentExecution(execution, () => outcomeOf(execution)))
      : (execution: IdempotencyExecution | undefined) => runInRequestFrame(source, execution, () => outcomeOf(execution));
    let answer = await this.claim(call, handle, transactional);
    // a message or an event waits for the first one with its key (HTTP refuses it with 409)
    if (call.waitsForInFlight) answer = await waitWhileInFlight(answer, () => this.claim(call, handle, transactional), this.options.clock, plan.options.lease);
    switch (answer.kind) {
      case 'delivered': {
        const { outcome } = answer;
        if (outcome.kind === 'error') throw call.renderError(outcome.error);
        return outcome.emissions === 0 ? undefined : outcome.value;
      }
      case 'replay': {
        // a response kept without its body answers its original status with this problem
        const notKept = notKeptProblemOf(answer.response, plan.options.headerName);
        return call.replay(answer.response, notKept === undefined ? undefined : this.errors.map(notKept));
      }
      case 'rejected':
        throw call.renderError(this.errors.map(answer.error));
    }
  }

  /** Claims the call's key and runs `handle` if it is this call's to run. */
  private claim(call: IdempotentCall, handle: (execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>, transactional: boolean): Promise<IdempotencyAnswer> {
    if (!transactional) return this.core.execute(call.request, call.response, handle);
    return runWithRequestInfo(call.source, () => this.core.execute(call.request, call.response, handle));
  }
}
