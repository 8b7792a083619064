// One call of a decorated handler as the engine runs it: what the engine planned for the method
// at start-up, the call itself, and the one object a route call is while its pipeline runs.
import type { ContextAdapter, ContextHost, HandlerProfile } from '../contexts/context-adapter.js';
import type { RequestInfoSource } from '../context/context-frame.js';
import type { SharedStoreFields } from '../context/resilience-context.js';
import type { Cancellation } from '../core/cancellation.js';
import type { Clock } from '../core/clock.js';
import { OperationAbortedError } from '../core/errors.js';
import type { IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';
import type { BoundMethod } from './binding/bound-method.js';
import type { IdempotentRoutePlan } from './idempotent-routes.js';
import type { AttemptWrapper, RouteCallTarget } from './pipeline-call.js';
import type { ResolvedTargetPolicy } from './resilience-options.resolver.js';

/** A handler's context as the engine uses it: its adapter and what the adapter made of it at start-up. @internal */
export interface PlanContext {
  readonly adapter: ContextAdapter;
  readonly profile: HandlerProfile;
}

/** What one application knows about one bound method of one class, computed at start-up (or on its first call). @internal */
export interface MethodPlan {
  readonly classRef: Function;
  /** The merged resilience settings, absent when the method is only `@Idempotent()`. */
  readonly target: ResolvedTargetPolicy | undefined;
  /** The idempotency settings of an `@Idempotent()` handler. */
  readonly idempotent: IdempotentRoutePlan | undefined;
  /** The context its metadata declares, when it is a handler Nest calls (a route, a message handler, a resolver, …). */
  readonly context: PlanContext | undefined;
  /** The contexts of other types it was called in (a handler serving two transports of a hybrid app). */
  otherContexts: Map<string, PlanContext> | undefined;
  /** Indexes of parameters filled in per call (`@AttemptSignal()`, `@IdempotencyTransaction()`), found on the first route call. */
  slots: readonly number[] | undefined;
}

/**
 * One call of a decorated handler: what was bound, on which instance, with which arguments, in
 * which context (a class, not a literal: see {@link RouteCallState}).
 * @internal
 */
export class RouteCall {
  constructor(
    readonly plan: MethodPlan,
    readonly self: object,
    readonly method: BoundMethod,
    /** The handler's arguments, after Nest's pipes (the hidden route argument removed). */
    readonly args: unknown[],
    /** The arguments of the handler's context (`ExecutionContext.getArgs()`): request and response on HTTP. */
    readonly host: ContextHost,
    readonly adapter: ContextAdapter,
    readonly profile: HandlerProfile,
  ) {}
}

/** Whether the handler itself produced the value (not a fallback after it failed). @internal */
export interface HandlerRun {
  succeeded: boolean;
}

/**
 * What a {@link RouteCallState} asks of the engine: the handler's call and the error its caller gets.
 * @internal
 */
export interface RouteHandlers {
  /** One attempt's call of the handler. */
  callHandler(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun | undefined): unknown;
  /** What the caller gets for `error` (rendered by the call's context when `render` is set). */
  mappedError(error: unknown, target: ResolvedTargetPolicy | undefined, render: boolean, adapter: ContextAdapter, host: ContextHost): unknown;
}

/**
 * One route call as the pipeline runs it: its token, deadline and commit check, the fields every
 * resilience context of the call shares (it is its own `store`), the watch on its caller that
 * aborts the token when the caller goes away, and the handler call and error mapping of each
 * attempt. One object per call: V8 would allocate literals of this path in old space once it saw
 * them outlive a scavenge, and them with everything they hold; closures would be one more each.
 * @internal
 */
export class RouteCallState implements RouteCallTarget, SharedStoreFields {
  readonly outerContext = true;
  readonly store: SharedStoreFields = this;
  private stopWatching: (() => void) | undefined;
  private ended = false;
  /** The adapter's commit check, asked for on the first {@link isCommitted} (after a failure). */
  private commitCheck: (() => boolean) | undefined;

  constructor(
    readonly cancellation: Cancellation,
    readonly deadline: number | undefined,
    readonly policy: string,
    readonly clock: Clock,
    readonly request: RequestInfoSource,
    readonly wrapAttempt: AttemptWrapper | undefined,
    private readonly handlers: RouteHandlers,
    private readonly route: RouteCall,
    private readonly execution: IdempotencyExecution | undefined,
    private readonly run: HandlerRun | undefined,
    /** Whether errors are rendered by the call's context (not when the idempotency layer stores them first). */
    private readonly render: boolean,
  ) {}

  /** The handler's arguments, for fallbacks. */
  get args(): readonly unknown[] {
    return this.route.args;
  }

  /** Whether the answer started; a method, so the response is only read once a failure asks. */
  isCommitted(): boolean {
    return (this.commitCheck ??= this.route.adapter.commitCheck(this.route.host) ?? notCommitted)();
  }

  callHandler(): unknown {
    return this.handlers.callHandler(this.route, this.execution, this.run);
  }

  mapError(error: unknown): unknown {
    const { route } = this;
    return this.handlers.mappedError(error, route.plan.target, this.render, route.adapter, route.host);
  }

  start(): void {
    if (this.ended || this.stopWatching !== undefined) return;
    const client = this.cancellation;
    const { route } = this;
    this.stopWatching = route.adapter.watchCaller(route.host, () => client.abort(clientClosed()), route.profile);
  }

  stop(): void {
    this.ended = true;
    const stopWatching = this.stopWatching;
    this.stopWatching = undefined;
    stopWatching?.();
  }
}

function notCommitted(): boolean {
  return false;
}

/** The error a call gets when its client went away. @internal */
export function clientClosed(): OperationAbortedError {
  return new OperationAbortedError('the client closed the connection');
}
