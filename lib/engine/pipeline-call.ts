// How one call runs through a pipeline: each attempt in its own resilience context (and tracing
// span), a promise or an Observable adapted to the pipeline's callback form. The engine calls
// these for decorated routes and provider methods; ResiliencePipelines only builds and caches the
// pipelines they run through.
import { Observable, from, isObservable, lastValueFrom, type Subscriber, type Subscription } from 'rxjs';
import {
  claimCallStore,
  closeCallStore,
  createCallStore,
  createContextStore,
  runAttemptCleanups,
  runWithResilienceContext,
  type SharedStoreFields,
} from '../context/resilience-context.js';
import { runInFrame, type ResilienceContextStore } from '../context/context-frame.js';
import { Cancellation, cancellationOf } from '../core/cancellation.js';
import { OperationAbortedError } from '../core/errors.js';
import type { Pipeline } from '../core/pipeline.js';
import type { PolicyContext } from '../core/policy.js';
import { once, promiseOf, settleWith, type Settle, type Work } from '../core/step.js';

/** Marks a pipeline result that was already delivered to the subscriber as it was emitted. */
const STREAMED: unique symbol = Symbol('streamed');

/**
 * How one call runs through a pipeline.
 * @internal
 */
export interface PipelineCall {
  /** The caller's cancellation token: the client connection, or the parent operation's attempt. */
  readonly cancellation?: Cancellation;
  /** The caller's signal, for callers without a token (a context store made by hand). */
  readonly signal?: AbortSignal;
  /** The caller's absolute deadline on the policy clock. */
  readonly deadline?: number;
  /** Returns `true` once the response started (nothing may be retried after it); called as a method of the call. */
  isCommitted?(): boolean;
  /** Arguments of the call, for fallbacks. */
  readonly args: readonly unknown[];
  /** Policy key, request id, route and clock of every resilience context of the call. */
  readonly store: SharedStoreFields;
  /** Runs the whole call (between attempts too) in a context of its own, so events carry the request id. */
  readonly outerContext?: boolean;
  /** Wraps each attempt (an OpenTelemetry span per attempt). */
  readonly wrapAttempt?: AttemptWrapper;
}

/**
 * The watch on what may abort a route call from outside (its caller going away).
 * @internal
 */
export interface CallerWatch {
  /** Starts watching; no-op once started or stopped. */
  start(): void;
  /** Stops watching (no-op when it never started); called once, when the call settles. */
  stop(): void;
}

/** Runs one attempt inside something (a tracing span); must return `run()`'s outcome unchanged. */
export type AttemptWrapper = (policy: string, attempt: number, run: () => Promise<unknown>) => Promise<unknown>;

function wrapped(call: PipelineCall, context: PolicyContext, run: () => Promise<unknown>): Promise<unknown> {
  return call.wrapAttempt ? call.wrapAttempt(context.policy, context.attempt, run) : run();
}

/** The resilience context of one attempt: its token (never its signal, which would be created). */
function attemptStore(call: PipelineCall, context: PolicyContext): ResilienceContextStore {
  // contexts handed to the work are always built by the pipeline, so they carry a token
  const token = cancellationOf(context) ?? Cancellation.from(context.signal);
  return createContextStore(call.store, token, context.deadline, context.attempt, true);
}

function runCall<T, A = undefined>(pipeline: Pipeline, call: PipelineCall, root: Cancellation, run: (arg: A) => T, callStore?: ResilienceContextStore, arg?: A): T {
  // only a fallback reads the arguments: skip the extra context switch otherwise
  const inArguments: (arg: A) => T = pipeline.stages[0]?.kind === 'fallback' ? (value) => runInFrame('callArguments', call.args, run, value) : run;
  if (callStore !== undefined) {
    try {
      return runWithResilienceContext(callStore, inArguments, arg);
    } finally {
      closeCallStore(callStore);
    }
  }
  return call.outerContext ? runWithResilienceContext(createContextStore(call.store, root, Infinity, 0), inArguments, arg) : inArguments(arg as A);
}

/**
 * The store of a call whose first attempt may share the call's frame ({@link createCallStore}):
 * a route call with an outer context, unless a fallback (which runs outside the attempts and may
 * call on, under the call's token) or an attempt wrapper (a span per attempt) is in the way.
 */
function claimableCallStore(pipeline: Pipeline, call: PipelineCall, root: Cancellation): ResilienceContextStore | undefined {
  if (call.outerContext !== true || call.wrapAttempt !== undefined || pipeline.stages[0]?.kind === 'fallback') return undefined;
  return createCallStore(call.store, root);
}

/** @internal a handler result as an Observable (a plain value or a promise becomes one). */
export function toObservable(value: unknown): Observable<unknown> {
  return isObservable(value) ? value : from(Promise.resolve(value));
}

function finiteOrUndefined(deadline: number | undefined): number | undefined {
  return deadline !== undefined && Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * One attempt of a call as pipeline {@link Work}: `body` runs inside the attempt's resilience
 * context (in its tracing span when telemetry wraps attempts), and the attempt's cleanups run when
 * it settles.
 */
function attemptWork(call: PipelineCall, body: (settle: Settle, store: ResilienceContextStore) => void): Work {
  return (context, settle) => {
    const store = attemptStore(call, context);
    const done = attemptSettle(store, settle);
    if (call.wrapAttempt) {
      // a tracing span around the attempt: its promise API
      settleWith(
        wrapped(call, context, () => runWithResilienceContext(store, () => promiseOf((inner) => body(inner, store)))),
        done,
      );
      return;
    }
    runWithResilienceContext(store, () => body(done, store));
  };
}

/** Calls `work` (a function, or a route call's handler) and settles with its result; an Observable result is awaited to its last value. */
function callWork(work: (() => unknown) | RouteCallTarget, settle: Settle): void {
  let value: unknown;
  try {
    value = typeof work === 'function' ? work() : work.callHandler();
  } catch (error) {
    settle(true, error);
    return;
  }
  if (isObservable(value)) settleWith(lastValueFrom(value), settle);
  else settleWith(value, settle);
}

/**
 * Runs a Promise-returning operation through `pipeline`; each attempt runs `work` inside its own
 * resilience context. An Observable result is awaited to its last value. One promise for the
 * whole call: the stages run in callback form.
 * @internal
 */
export function executePromise<T>(pipeline: Pipeline, work: () => unknown, call: PipelineCall): Promise<T> {
  const owned = call.cancellation === undefined && call.signal !== undefined;
  const root = call.cancellation ?? Cancellation.from(call.signal);
  return promiseOf<T>((settle) =>
    runCall(pipeline, call, root, () =>
      pipeline.run(
        attemptWork(call, (settle) => callWork(work, settle)),
        { cancellation: root, deadline: finiteOrUndefined(call.deadline), isCommitted: call.isCommitted === undefined ? undefined : () => call.isCommitted!() },
        owned
          ? (failed, outcome) => {
              root.dispose();
              settle(failed, outcome);
            }
          : settle,
      ),
    ),
  );
}

/**
 * A route call as {@link executeRoute} runs it: the call (token, deadline, commit check, the fields
 * its resilience contexts share), the watch on its caller, the handler and the error mapping, as
 * methods of the engine's one object per call.
 * @internal
 */
export interface RouteCallTarget extends PipelineCall, CallerWatch {
  readonly cancellation: Cancellation;
  /** Calls the handler once: one attempt's work. */
  callHandler(): unknown;
  /** What the caller gets for the call's `error`. */
  mapError(error: unknown): unknown;
}

/**
 * {@link executePromise} for a route handler, whose caller (Nest) takes a value or a promise: the
 * value itself when the pipeline settled before returning (a synchronous handler costs no
 * promise), else one promise. The call's watch is started once the call goes asynchronous (the
 * caller can only go away in a later turn; the engine checked it before the call) and stopped when
 * the call settles. Errors pass through the call's `mapError`.
 * @internal
 */
export function executeRoute(pipeline: Pipeline, call: RouteCallTarget): unknown {
  return new RouteExecution(pipeline, call).start();
}

/** Starts a route call's pipeline (the function its frame runs: no closure per call). */
function runRoutePipeline(execution: RouteExecution): void {
  execution.runPipeline();
}

/**
 * One route call through its pipeline: its outcome before the promise exists, and the settle and
 * attempt functions the pipeline calls, in one object (a closure per stage of the call before).
 */
class RouteExecution {
  /** 0 running, 1 succeeded, 2 failed, before the promise exists. */
  private state = 0;
  private outcome: unknown = undefined;
  private resolve: ((value: unknown) => void) | undefined;
  private reject: ((error: unknown) => void) | undefined;
  private readonly callStore: ResilienceContextStore | undefined;
  /** The call's settle, handed to the pipeline. */
  private readonly settle: Settle = (failed, result) => this.settled(failed, result);
  /** One attempt, handed to the pipeline. */
  private readonly attempt: Work = (context, settle) => this.runAttempt(context, settle);
  /** The attempts that run in a frame of their own, made on the first such attempt. */
  private ownFrameAttempt: Work | undefined;

  constructor(
    private readonly pipeline: Pipeline,
    private readonly call: RouteCallTarget,
  ) {
    this.callStore = claimableCallStore(pipeline, call, call.cancellation);
  }

  start(): unknown {
    const { call } = this;
    runCall(this.pipeline, call, call.cancellation, runRoutePipeline, this.callStore, this);
    // a caller found gone as the watch starts aborts the call here and now: check the state after it
    if (this.state === 0) call.start();
    if (this.state === 1) return this.outcome;
    if (this.state === 2) return Promise.reject(call.mapError(this.outcome));
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  runPipeline(): void {
    const { call } = this;
    // the call has what the pipeline reads: no options object per call unless its deadline needs mending
    const options = call.deadline === undefined || Number.isFinite(call.deadline) ? call : { cancellation: call.cancellation, isCommitted: () => call.isCommitted?.() ?? false };
    this.pipeline.run(this.attempt, options, this.settle);
  }

  private settled(failed: boolean, result: unknown): void {
    const { call } = this;
    call.stop();
    if (this.resolve === undefined) {
      this.state = failed ? 2 : 1;
      this.outcome = result;
      return;
    }
    if (failed) this.reject!(call.mapError(result));
    else this.resolve(result);
  }

  private runAttempt(context: PolicyContext, settle: Settle): void {
    const { call, callStore } = this;
    // the first attempt, started in the call's first pass, takes the call's frame over
    if (callStore !== undefined && claimCallStore(callStore, cancellationOf(context) ?? Cancellation.from(context.signal), context.deadline, context.attempt)) {
      callWork(call, attemptSettle(callStore, settle));
      return;
    }
    // a later attempt (or one that cannot share the call's frame) runs in a frame of its own
    (this.ownFrameAttempt ??= attemptWork(call, (inner) => callWork(call, inner)))(context, settle);
  }
}

/** An attempt's settle: its cleanups run, then the pipeline hears of it. */
function attemptSettle(store: ResilienceContextStore, settle: Settle): Settle {
  return (failed, outcome) => {
    runAttemptCleanups(store);
    settle(failed, outcome);
  };
}


/**
 * Runs an Observable-producing operation through `pipeline`. Each attempt subscribes to a fresh
 * source (created inside the attempt's resilience context). Emissions are forwarded as they come;
 * the first emission (or completion) ends the attempt successfully, so nothing is retried once
 * something was emitted, and the timeouts bound the time to the first emission. Errors after that
 * pass through `mapError` unchanged by any policy. Unsubscribing before the pipeline settled aborts
 * the work (the client went away).
 * @internal
 */
export function executeObservable(
  pipeline: Pipeline,
  source: () => unknown,
  call: PipelineCall & { readonly mapError: (error: unknown) => unknown },
): Observable<unknown> {
  return new Observable<unknown>((subscriber) => runObservable(pipeline, source, call, subscriber));
}

/**
 * {@link executeObservable} for a subscriber that already exists (the engine's own
 * Observable); returns the teardown.
 * @internal
 */
export function runObservable(
  pipeline: Pipeline,
  source: () => unknown,
  call: PipelineCall & { readonly mapError: (error: unknown) => unknown },
  subscriber: Subscriber<unknown>,
): () => void {
  const root = call.cancellation ? call.cancellation.child() : Cancellation.from(call.signal);
  let settled = false;
  let emitted = false;
  let sourceCompleted = false;
  let inner: Subscription | undefined;

  const fail = (error: unknown) => subscriber.error(call.mapError(error));
  const completeWhenDone = () => {
    if (settled && sourceCompleted) subscriber.complete();
  };

  // the attempt settles once, with the first emission (or completion) or its error
  const attempt = attemptWork(call, (settleAttempt, store) => {
    // the pipeline builds every attempt's context, so its store carries a token
    const token = store.cancellation!;
    const settle: Settle = once((failed, outcome) => {
      stopListening();
      settleAttempt(failed, outcome);
    });
    const stopListening = token.onAbort((reason) => {
      if (emitted) return;
      inner?.unsubscribe();
      settle(true, reason);
    });
    let source$: Observable<unknown>;
    try {
      source$ = toObservable(source());
    } catch (error) {
      settle(true, error);
      return;
    }
    inner = source$.subscribe({
      next: (value) => {
        if (!emitted) {
          emitted = true;
          settle(false, STREAMED);
        }
        subscriber.next(value);
      },
      error: (error: unknown) => {
        if (emitted) {
          fail(error);
          return;
        }
        settle(true, error);
      },
      complete: () => {
        sourceCompleted = true;
        if (emitted) completeWhenDone();
        else settle(false, STREAMED);
      },
    });
  });

  runCall(pipeline, call, root, () =>
    pipeline.run(
      attempt,
      { cancellation: root, deadline: finiteOrUndefined(call.deadline), isCommitted: () => emitted || (call.isCommitted?.() ?? false) },
      (failed, result) => {
        settled = true;
        if (failed) {
          if (!subscriber.closed) fail(result);
          return;
        }
        if (result === STREAMED) {
          if (!emitted || sourceCompleted) subscriber.complete();
          return;
        }
        subscriber.next(result);
        subscriber.complete();
      },
    ),
  );

  return () => {
    if (!settled) root.abort(new OperationAbortedError('the subscriber unsubscribed before the operation finished'));
    inner?.unsubscribe();
    root.dispose();
  };
}
