import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Observable } from 'rxjs';
import {
  ParameterSlot,
  RouteInvocation,
  type BoundMethod,
  type MethodInvoker,
} from './binding/bound-method.js';
import type { ContextAdapter, ContextHandler, ContextHost } from '../contexts/context-adapter.js';
import { ContextAdapters } from '../contexts/context-adapters.js';
import type { JobProfile } from '../contexts/job.context.js';
import type { ResilienceContextStore } from '../context/context-frame.js';
import { currentResilienceStore, getRequestInfo } from '../context/resilience-context.js';
import { Cancellation } from '../core/cancellation.js';
import { resolveRetryOptions } from '../core/validate.js';
import { StaleAnswer } from '../core/last-good.js';
import { AttemptSettledError } from '../core/timeout.policy.js';
import { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';
import type { HandlerOutcome, IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';
import { IdempotentRoutes } from './idempotent-routes.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import type { ResolvedTargetPolicy } from './resilience-options.resolver.js';
import { executeObservable, executePromise, executeRoute, runObservable, type PipelineCall } from './pipeline-call.js';
import { ResiliencePipelines } from './resilience-pipelines.js';
import { clientClosed, RouteCall, RouteCallState, type HandlerRun, type MethodPlan, type PlanContext, type RouteHandlers } from './route-call.js';

/**
 * The one execution engine of an application: every call of a decorated handler or provider
 * method comes here (through the wrapper the decorators installed, found via the instance) and
 * runs through its policy pipeline (`Pipeline.run`), inside the idempotency layer for
 * `@Idempotent()` handlers. It knows no Nest context: what a call's context offers (request id,
 * operation, caller-gone signal, caller's deadline, whether the answer started, how an error is
 * answered, where an idempotency key comes from) it asks the call's {@link ContextAdapter}. Errors
 * that reach a caller go through the {@link ResilienceErrorMapper}, then the adapter renders them.
 *
 * A handler call runs directly around the handler, after guards, interceptors and pipes: a retry
 * runs the handler again with the same (already validated) arguments, never guards, interceptors
 * or pipes. The caller going away aborts the work; nothing is retried once the answer started.
 * @internal
 */
@Injectable()
export class ResilienceEngine implements MethodInvoker, RouteHandlers {
  private readonly plans = new Map<BoundMethod, MethodPlan>();
  private readonly otherClassPlans = new WeakMap<Function, Map<BoundMethod, MethodPlan>>();

  constructor(
    private readonly pipelines: ResiliencePipelines,
    @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: ResolvedResilienceOptions,
    private readonly errors: ResilienceErrorMapper,
    private readonly idempotency: IdempotentRoutes,
    private readonly contexts: ContextAdapters,
  ) {}

  invoke(self: object, method: BoundMethod, args: unknown[]): unknown {
    const index = method.invocationIndex;
    const invocation = args.length > index ? args[index] : undefined;
    if (invocation instanceof RouteInvocation) {
      args.length = index;
      if (!this.options.enabled) return method.original.apply(self, args);
      return this.invokeRoute(self, method, args, invocation.context);
    }
    if (!this.options.enabled) return method.original.apply(self, args);
    return this.invokeMethod(self, method, args);
  }

  /** The plan of `method` on the class of `self` (cached per class). */
  planOf(self: object, method: BoundMethod): MethodPlan {
    return this.planFor(self.constructor, method);
  }

  /**
   * The plan of `method` on `classRef` (cached per class). Made at start-up by the binder, so a
   * decorator that cannot hold in the handler's context stops the application there.
   * @throws ResilienceConfigError naming the handler and the fix.
   */
  planFor(classRef: Function, method: BoundMethod): MethodPlan {
    const plan = this.plans.get(method);
    if (plan !== undefined && plan.classRef === classRef) return plan;
    if (plan === undefined) {
      const created = this.createPlan(classRef, method);
      this.plans.set(method, created);
      return created;
    }
    // an inherited method called on a subclass (its class-level decorators may differ)
    let byMethod = this.otherClassPlans.get(classRef);
    if (byMethod === undefined) this.otherClassPlans.set(classRef, (byMethod = new Map()));
    let other = byMethod.get(method);
    if (other === undefined) byMethod.set(method, (other = this.createPlan(classRef, method)));
    return other;
  }

  private createPlan(classRef: Function, method: BoundMethod): MethodPlan {
    const handler = this.handlerOf(classRef, method, this.contexts.typeOf(classRef, method.wrapper, method.name));
    const idempotent = this.idempotency.isIdempotent(classRef, method);
    const adapter = this.contexts.adapterOf(handler, idempotent);
    let profile = adapter?.profile(handler, idempotent);
    const target = this.pipelines.targetFor(classRef, method.wrapper, method.name);
    if (profile !== undefined && adapter === this.contexts.job) profile = this.contexts.job.withRetries(profile, target?.retry !== undefined && resolveRetryOptions(target.retry).maxAttempts > 1);
    const context = adapter !== undefined && profile !== undefined ? { adapter, profile } : undefined;
    return {
      classRef,
      target,
      // the route's deadline sets its default lease and bounds its 409s' Retry-After
      idempotent: idempotent && context !== undefined ? this.idempotency.planFor(classRef, method, context.adapter, target?.timeout.total) : undefined,
      context,
      otherContexts: undefined,
      slots: undefined,
    };
  }

  private handlerOf(classRef: Function, method: BoundMethod, type: ContextHandler['type']): ContextHandler {
    return { classRef, methodName: method.name, handler: method.wrapper, where: `${classRef.name}.${method.name}`, type };
  }

  /** The context of a call whose type is not the one its handler's metadata declares (hybrid apps). */
  private otherContextOf(plan: MethodPlan, method: BoundMethod, type: string): PlanContext {
    let byType = plan.otherContexts;
    if (byType === undefined) plan.otherContexts = byType = new Map();
    let context = byType.get(type);
    if (context === undefined) {
      const adapter = this.contexts.adapterFor(type) ?? this.contexts.passthrough(type);
      const handler = this.handlerOf(plan.classRef, method, adapter.type);
      context = { adapter, profile: adapter.profile(handler, plan.idempotent !== undefined) };
      byType.set(type, context);
    }
    return context;
  }

  private invokeRoute(self: object, method: BoundMethod, handlerArgs: unknown[], context: ExecutionContext): unknown {
    const plan = this.planOf(self, method);
    const type = context.getType();
    const { adapter, profile } = plan.context !== undefined && plan.context.adapter.type === type ? plan.context : this.otherContextOf(plan, method, type);
    const host = context.getArgs();
    // Nest passes a handler without parameter decorators its context's arguments (`data, ctx`),
    // unless some parameter is decorated: the hidden argument is, so they are passed here instead
    const args = method.declaresParameters || type === 'http' ? handlerArgs : host.slice();
    plan.slots ??= slotsOf(args);
    const route = new RouteCall(plan, self, method, args, host, adapter, profile);
    if (plan.idempotent !== undefined && adapter.idempotencyApplies(host)) {
      return this.idempotency.run(plan.idempotent, adapter.idempotentCall(host, profile, plan.idempotent.options), (execution) => this.routeOutcome(route, execution));
    }
    return this.runRoute(route, undefined, undefined, true);
  }

  /** Runs an idempotent route's handler through its pipeline and reports what came out. */
  private routeOutcome(route: RouteCall, execution: IdempotencyExecution | undefined): Promise<HandlerOutcome> {
    const run: HandlerRun = { succeeded: false };
    if (route.plan.target === undefined) return this.bareRouteOutcome(route, execution, run);
    // errors stay the mapper's problems here: the idempotency layer stores them, then renders them
    return collect(this.runRoute(route, execution, run, false)).then(
      ({ value, emissions }): HandlerOutcome => ({ kind: 'value', value, emissions, fromHandler: run.succeeded }),
      (error: unknown): HandlerOutcome => ({ kind: 'error', error }),
    );
  }

  /**
   * {@link routeOutcome} of a route with no policy besides `@Idempotent()`: the handler's result
   * settles straight into the outcome (two promises where going through `runRoute` and `collect`
   * takes four, each one more turn for every async hook of the process).
   */
  private bareRouteOutcome(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun): Promise<HandlerOutcome> {
    const failed = (error: unknown): HandlerOutcome => ({ kind: 'error', error: this.mapError(error, undefined) });
    let result: unknown;
    try {
      result = this.callHandler(route, execution, run);
    } catch (error) {
      return Promise.resolve(failed(error));
    }
    if (result instanceof Observable) {
      return collect(result).then(({ value, emissions }): HandlerOutcome => ({ kind: 'value', value, emissions, fromHandler: run.succeeded }), failed);
    }
    return Promise.resolve(result).then((value): HandlerOutcome => ({ kind: 'value', value, emissions: 1, fromHandler: run.succeeded }), failed);
  }

  /**
   * Runs a handler call through its pipeline. Errors go through the mapper and, when `render` is
   * set, through the context's rendering (the idempotency layer renders them itself, after storing).
   */
  private runRoute(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun | undefined, render: boolean): unknown {
    const { plan, method, args, host, adapter, profile } = route;
    const { target } = plan;
    if (target === undefined) {
      // only @Idempotent(): no pipeline, the handler runs as it is
      const mapError = (error: unknown) => this.mappedError(error, target, render, adapter, host);
      try {
        return Promise.resolve(this.callHandler(route, execution, run)).catch((error: unknown) => {
          throw mapError(error);
        });
      } catch (error) {
        return Promise.reject(mapError(error));
      }
    }
    const key = this.pipelines.keyFor(target, args, host[0]);
    const pipeline = this.pipelines.pipelineFor(target, key);
    const clock = this.pipelines.env.clock;
    const call = new RouteCallState(
      // a token, not an AbortController: the signal is only created if the handler asks for it
      new Cancellation(),
      adapter.deadlineOf(host, clock),
      key,
      clock,
      adapter.describe(host, profile),
      this.pipelines.attemptWrapper(),
      this,
      route,
      execution,
      run,
      render,
    );
    // a caller already gone stops the call before it runs; an adapter that can tell so up front is
    // watched only once the call goes asynchronous (no close event can arrive before), others from now
    if (adapter.callerGone === undefined || method.returnsObservable) call.start();
    else if (adapter.callerGone(host, profile)) call.cancellation.abort(clientClosed());
    if (method.returnsObservable) {
      return new Observable<unknown>((subscriber) => {
        const teardown = runObservable(pipeline, () => call.callHandler(), { ...call, args, isCommitted: () => call.isCommitted(), mapError: (error) => call.mapError(error) }, subscriber);
        return () => {
          teardown();
          call.stop();
        };
      });
    }
    const outcome = executeRoute(pipeline, call);
    // only a last-good fallback answers a StaleAnswer: other routes keep the synchronous return
    if (target.fallback?.lastGood === undefined) return outcome;
    const answer = (value: unknown): unknown => {
      if (!(value instanceof StaleAnswer)) return value;
      adapter.markStale?.(host, value.ageMs);
      return value.value;
    };
    return outcome instanceof Promise ? outcome.then(answer) : answer(outcome);
  }

  /**
   * What the caller of a handler gets for `error`: the mapper's answer, rendered by the context
   * when `render` is set (the idempotency layer renders errors itself, after storing them).
   * @internal
   */
  mappedError(error: unknown, target: ResolvedTargetPolicy | undefined, render: boolean, adapter: ContextAdapter, host: ContextHost): unknown {
    const mapped = this.mapError(error, target);
    return render ? adapter.renderError(mapped, host) : mapped;
  }

  /** One attempt's call of the handler, its parameter slots filled in from the call's context. @internal */
  callHandler(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun | undefined): unknown {
    const { plan, self, method, args } = route;
    const slots = plan.slots;
    let callArgs = args;
    if (slots !== undefined && slots.length > 0) {
      callArgs = args.slice();
      for (const index of slots) callArgs[index] = (args[index] as ParameterSlot).resolve();
    }
    if (run === undefined) return method.original.apply(self, callArgs);
    return tracked(execution, run, () => method.original.apply(self, callArgs));
  }

  /** What the one error mapper makes of `error` (a problem for the library's errors), before any context renders it. */
  private mapError(error: unknown, target: ResolvedTargetPolicy | undefined): unknown {
    return this.errors.map(error, { bulkheadRejectStatus: target?.bulkheadRejectStatus });
  }

  /**
   * A decorated method Nest does not route: a provider method (its pipeline, under the attempt of
   * its caller), an `@Idempotent()` one (inside the idempotency layer), or a BullMQ processor's
   * `process(job, token)` (the job context: the job settles as BullMQ expects).
   */
  private invokeMethod(self: object, method: BoundMethod, args: unknown[]): unknown {
    const plan = this.planOf(self, method);
    if (plan.context !== undefined) {
      return plan.context.adapter === this.contexts.job ? this.invokeJob(plan, plan.context, self, method, args) : this.invokeIdempotentMethod(plan, plan.context, self, method, args);
    }
    return this.runMethod(plan.target, self, method, args, undefined);
  }

  /**
   * One job of a BullMQ processor: its pipeline (inside the idempotency layer when `@Idempotent()`),
   * then what BullMQ acts on: a transient problem with a known delay moves the job to delayed (and
   * an open circuit pauses the worker), another problem fails it for good, the handler's own
   * errors go to the queue's attempts as they are.
   */
  private async invokeJob(plan: MethodPlan, context: PlanContext, self: object, method: BoundMethod, args: unknown[]): Promise<unknown> {
    const { adapter, profile } = context;
    const jobs = this.contexts.job;
    plan.slots ??= [];
    const route = new RouteCall(plan, self, method, args, args, adapter, profile);
    try {
      if (plan.idempotent !== undefined) {
        return await this.idempotency.run(plan.idempotent, adapter.idempotentCall(args, profile, plan.idempotent.options), (execution) => this.routeOutcome(route, execution));
      }
      try {
        return await this.runRoute(route, undefined, undefined, false);
      } catch (error) {
        throw jobs.renderJobError(error, args, (profile as JobProfile).retriedInProcess);
      }
    } catch (error) {
      return jobs.settle(error, args, workerOf(self));
    }
  }

  /** A call of an `@Idempotent({ key })` provider method: the first call with a key runs, the others get its stored outcome. */
  private invokeIdempotentMethod(plan: MethodPlan, context: PlanContext, self: object, method: BoundMethod, args: unknown[]): Promise<unknown> {
    const idempotent = plan.idempotent!;
    const { target } = plan;
    return this.idempotency.run(idempotent, context.adapter.idempotentCall(args, context.profile, idempotent.options), (execution) => {
      const run: HandlerRun = { succeeded: false };
      const call = () => tracked(execution, run, () => method.original.apply(self, args));
      let result: unknown;
      try {
        result = this.runMethod(target, self, method, args, call);
      } catch (error) {
        return Promise.resolve({ kind: 'error', error });
      }
      return collect(result).then(
        ({ value, emissions }): HandlerOutcome => ({ kind: 'value', value, emissions, fromHandler: run.succeeded }),
        (error: unknown): HandlerOutcome => ({ kind: 'error', error }),
      );
    });
  }

  /** A decorated provider method's pipeline, under the attempt (deadline, signal) of its caller; `call` runs the method itself. */
  private runMethod(target: ResolvedTargetPolicy | undefined, self: object, method: BoundMethod, args: unknown[], run: (() => unknown) | undefined): unknown {
    if (target === undefined) return run === undefined ? method.original.apply(self, args) : run();
    const parent = liveParentOf(currentResilienceStore());
    const request = getRequestInfo();
    const key = this.pipelines.keyFor(target, args);
    const pipeline = this.pipelines.pipelineFor(target, key);
    const call: PipelineCall = {
      // the parent attempt's token: reading `parent.signal` would create its AbortSignal
      cancellation: parent?.cancellation,
      signal: parent !== undefined && parent.cancellation === undefined ? parent.signal : undefined,
      deadline: parent?.deadline,
      args,
      wrapAttempt: this.pipelines.attemptWrapper(),
      store: { policy: key, clock: this.pipelines.env.clock, request: request && { info: () => request } },
    };
    const work = run ?? (() => method.original.apply(self, args));
    if (method.returnsObservable) {
      return executeObservable(pipeline, work, { ...call, mapError: (error) => error });
    }
    const result = executePromise(pipeline, work, call);
    // only a last-good fallback answers a StaleAnswer: other methods pay no extra promise
    return target.fallback?.lastGood === undefined ? result : result.then((value) => (value instanceof StaleAnswer ? value.value : value));
  }
}

/**
 * Runs the handler while counting it as running in the idempotent execution (a handler abandoned
 * by a timeout keeps its key until it settles), and notes whether it produced the value itself.
 */
function tracked(execution: IdempotencyExecution | undefined, run: HandlerRun, call: () => unknown): unknown {
  if (execution !== undefined) execution.running++;
  const settle = () => {
    if (execution === undefined) return;
    execution.running--;
    if (execution.running === 0) execution.onIdle?.();
  };
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    settle();
    throw error;
  }
  // only real promises are tracked: calling then() on a lazy thenable (a query builder) would run it twice
  if (result instanceof Promise) {
    result.then(
      () => {
        run.succeeded = true;
        settle();
      },
      settle,
    );
  } else {
    run.succeeded = true;
    settle();
  }
  return result;
}

/** The worker of a BullMQ processor (`WorkerHost.worker`), if it has one yet. */
function workerOf(processor: object): { pause(doNotWaitActive?: boolean): Promise<void>; resume(): Promise<void> | void; isPaused(): boolean } | undefined {
  try {
    const worker = (processor as { worker?: unknown }).worker;
    return typeof worker === 'object' && worker !== null && typeof (worker as { pause?: unknown }).pause === 'function' ? (worker as ReturnType<typeof workerOf>) : undefined;
  } catch {
    // WorkerHost.worker throws before the worker exists
    return undefined;
  }
}

/** The value (and how many were emitted) of a handler result: a plain value, a promise or an Observable. */
function collect(result: unknown): Promise<{ value: unknown; emissions: number }> {
  if (!(result instanceof Observable)) return Promise.resolve(result).then((value) => ({ value, emissions: 1 }));
  return new Promise((resolve, reject) => {
    let emissions = 0;
    let last: unknown;
    result.subscribe({
      next: (value) => {
        emissions++;
        last = value;
      },
      error: reject,
      complete: () => resolve({ value: last, emissions }),
    });
  });
}

/** Indexes of the parameter slots among a route call's arguments. */
function slotsOf(args: readonly unknown[]): readonly number[] {
  const slots: number[] = [];
  for (let index = 0; index < args.length; index++) if (args[index] instanceof ParameterSlot) slots.push(index);
  return slots;
}

/**
 * The attempt a call runs under, unless that attempt already settled: a job queued by a request
 * (`setImmediate`, an after-commit hook) runs after the attempt that queued it ended, and must not
 * inherit its aborted signal or its deadline. It keeps the request id (read separately).
 */
function liveParentOf(store: ResilienceContextStore | undefined): ResilienceContextStore | undefined {
  const reason = store?.cancellation?.aborted ? store.cancellation.reason : undefined;
  return reason instanceof AttemptSettledError ? undefined : store;
}


