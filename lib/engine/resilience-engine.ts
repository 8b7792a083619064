import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Observable } from 'rxjs';
import {
  ParameterSlot,
  RouteInvocation,
  type BoundMethod,
  type MethodInvoker,
} from './binding/bound-method.js';
import type { ResilienceContextStore } from '../context/context-frame.js';
import { currentResilienceStore, getRequestInfo } from '../context/resilience-context.js';
import { Cancellation } from '../core/cancellation.js';
import { OperationAbortedError } from '../core/errors.js';
import { STALE_HEADER, StaleAnswer } from '../core/last-good.js';
import { AttemptSettledError } from '../core/timeout.policy.js';
import { applyProblemHeaders, isProblemDetailsException } from '../http/problem-details.js';
import { onClientDisconnect, rawResponseOf, requestInfoSource } from '../http/request-info.js';
import { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';
import type { HandlerOutcome, IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';
import { IdempotentRoutes, type IdempotentRoutePlan } from '../idempotency/idempotent-routes.js';
import { setResponseHeader } from '../idempotency/stored-response.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import type { ResolvedTargetPolicy } from './resilience-options.resolver.js';
import { executeObservable, executePromise, runObservable, type PipelineCall } from './pipeline-call.js';
import { ResiliencePipelines } from './resilience-pipelines.js';

/** What one application knows about one bound method of one class, computed on its first call. */
interface MethodPlan {
  readonly classRef: Function;
  /** The merged resilience settings, absent when the method is only `@Idempotent()`. */
  readonly target: ResolvedTargetPolicy | undefined;
  /** The idempotency settings of an `@Idempotent()` route. */
  readonly idempotent: IdempotentRoutePlan | undefined;
  /** Indexes of parameters filled in per call (`@AttemptSignal()`, `@IdempotencyTransaction()`), found on the first route call. */
  slots: readonly number[] | undefined;
}

/** One call of a decorated route: what was bound, on which instance, with which arguments and HTTP exchange. */
interface RouteCall {
  readonly plan: MethodPlan;
  readonly self: object;
  readonly method: BoundMethod;
  /** The handler's arguments, after Nest's pipes (the hidden route argument removed). */
  readonly args: unknown[];
  readonly request: any;
  readonly response: any;
}

/** Whether the handler itself produced the value (not a fallback after it failed). */
interface HandlerRun {
  succeeded: boolean;
}

/**
 * The one execution engine of an application: every call of a decorated route or provider method
 * comes here (through the wrapper the decorators installed, found via the instance) and runs
 * through its policy pipeline (`Pipeline.run`), inside the idempotency layer for
 * `@Idempotent()` routes. Errors that reach a client go through the {@link ResilienceErrorMapper}.
 *
 * A route call runs directly around the handler, after guards, interceptors and pipes: a retry
 * runs the handler again with the same (already validated) arguments, never guards, interceptors
 * or pipes. Client disconnect aborts the work; nothing is retried once the response started.
 * @internal
 */
@Injectable()
export class ResilienceEngine implements MethodInvoker {
  private readonly plans = new Map<BoundMethod, MethodPlan>();
  private readonly otherClassPlans = new WeakMap<Function, Map<BoundMethod, MethodPlan>>();

  constructor(
    private readonly pipelines: ResiliencePipelines,
    @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: ResolvedResilienceOptions,
    private readonly errors: ResilienceErrorMapper,
    private readonly idempotency: IdempotentRoutes,
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
    const classRef = self.constructor;
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
    return {
      classRef,
      target: this.pipelines.targetFor(classRef, method.wrapper, method.name),
      idempotent: this.idempotency.planFor(classRef, method),
      slots: undefined,
    };
  }

  private invokeRoute(self: object, method: BoundMethod, args: unknown[], context: ExecutionContext): unknown {
    const plan = this.planOf(self, method);
    plan.slots ??= slotsOf(args);
    const route: RouteCall = { plan, self, method, args, request: context.getArgByIndex(0), response: context.getArgByIndex(1) };
    if (plan.idempotent !== undefined && this.idempotency.applies(route.request)) {
      return this.idempotency.run(plan.idempotent, route.request, route.response, (execution) => this.routeOutcome(route, execution));
    }
    return this.runRoute(route, undefined, undefined);
  }

  /** Runs an idempotent route's handler through its pipeline and reports what came out. */
  private routeOutcome(route: RouteCall, execution: IdempotencyExecution | undefined): Promise<HandlerOutcome> {
    const run: HandlerRun = { succeeded: false };
    if (route.plan.target === undefined) return this.bareRouteOutcome(route, execution, run);
    return collect(this.runRoute(route, execution, run)).then(
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
    const failed = (error: unknown): HandlerOutcome => ({ kind: 'error', error: this.mapError(error, route.response, undefined) });
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

  private runRoute(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun | undefined): unknown {
    const { plan, method, args, request, response } = route;
    const { target } = plan;
    const work = () => this.callHandler(route, execution, run);
    const mapError = (error: unknown) => this.mapError(error, response, target);
    if (target === undefined) {
      // only @Idempotent(): no pipeline, the handler runs as it is
      try {
        return Promise.resolve(work()).catch((error: unknown) => {
          throw mapError(error);
        });
      } catch (error) {
        return Promise.reject(mapError(error));
      }
    }
    const key = this.pipelines.keyFor(target, args, request);
    const pipeline = this.pipelines.pipelineFor(target, key);
    // a token, not an AbortController: the signal is only created if the handler asks for it
    const client = new Cancellation();
    const stopWatching = onClientDisconnect(response, () => client.abort(new OperationAbortedError('the client closed the connection')));
    const raw = rawResponseOf(response);
    const call: PipelineCall = {
      cancellation: client,
      isCommitted: () => raw.headersSent === true,
      args,
      store: { policy: key, clock: this.pipelines.env.clock, request: requestInfoSource(request) },
      outerContext: true,
      wrapAttempt: this.pipelines.wrapAttempt,
    };
    if (method.returnsObservable) {
      return new Observable<unknown>((subscriber) => {
        const teardown = runObservable(pipeline, work, { ...call, mapError }, subscriber);
        return () => {
          teardown();
          stopWatching();
        };
      });
    }
    return executePromise(pipeline, work, call).then(
      (value) => {
        stopWatching();
        if (value instanceof StaleAnswer) {
          setResponseHeader(response, STALE_HEADER, String(Math.floor(value.ageMs / 1000)));
          return value.value;
        }
        return value;
      },
      (error: unknown) => {
        stopWatching();
        throw mapError(error);
      },
    );
  }

  /** One attempt's call of the handler, its parameter slots filled in from the call's context. */
  private callHandler(route: RouteCall, execution: IdempotencyExecution | undefined, run: HandlerRun | undefined): unknown {
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

  /** Maps `error` for the client and sets the problem's headers on the response. */
  private mapError(error: unknown, response: unknown, target: ResolvedTargetPolicy | undefined): unknown {
    const mapped = this.errors.map(error, { bulkheadRejectStatus: target?.bulkheadRejectStatus });
    if (isProblemDetailsException(mapped)) applyProblemHeaders(response, mapped);
    return mapped;
  }

  /** A decorated provider method: its pipeline, under the attempt (deadline, signal) of its caller. */
  private invokeMethod(self: object, method: BoundMethod, args: unknown[]): unknown {
    const { target } = this.planOf(self, method);
    if (target === undefined) return method.original.apply(self, args);
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
      wrapAttempt: this.pipelines.wrapAttempt,
      store: { policy: key, clock: this.pipelines.env.clock, request: request && { info: () => request } },
    };
    const work = () => method.original.apply(self, args);
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
