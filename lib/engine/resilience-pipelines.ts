import { Inject, Injectable, Optional, type Type } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Observable, from, isObservable, lastValueFrom, type Subscriber, type Subscription } from 'rxjs';
import {
  createContextStore,
  runAttemptCleanups,
  runWithResilienceContext,
  type ResilienceContextStore,
  type SharedStoreFields,
} from '../context/resilience-context.js';
import { currentInFrame, runInFrame } from '../context/context-frame.js';
import { Cancellation, cancellationOf } from '../core/cancellation.js';
import { promiseOf, settleWith, type Settle, type Work } from '../core/step.js';
import { OperationAbortedError } from '../core/errors.js';
import type { PipelineSpec } from '../core/options.js';
import { createPipeline, describePipeline, type Pipeline, type PipelineStage } from '../core/pipeline.js';
import type { PolicyContext, PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import type {
  FallbackMetadata,
  FallbackProvider,
  PolicyKeyContext,
  ResolvedResilienceOptions,
} from '../interfaces/resilience-module-options.interface.js';
import { ResilienceTelemetry } from '../observability/resilience-telemetry.js';
import { RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import {
  isDecorated,
  readTargetMetadata,
  resolveTargetPolicy,
  specWithoutFallback,
  type ResolvedTargetPolicy,
} from './resilience-options.resolver.js';

/** Marks a pipeline result that was already delivered to the subscriber as it was emitted. */
const STREAMED: unique symbol = Symbol('streamed');

/**
 * Resolves the resilience settings of routes and provider methods once and keeps their pipelines,
 * so the engine, the start-up checks and `describe()` all see the same thing. Breaker, bulkhead
 * and budget state lives in the shared `PolicyRegistry`. Not exported from the package root (its
 * typings ship because `ResilienceService` and `CircuitBreakerService` are built on it).
 */
@Injectable()
export class ResiliencePipelines {
  private readonly targets = new WeakMap<Function, Map<Function, ResolvedTargetPolicy | null>>();
  private readonly targetIds = new WeakMap<ResolvedTargetPolicy, number>();
  /** Pipelines of per-call keys (`key` option as a function), least recently used first. */
  private readonly pipelines = new Map<string, Pipeline>();
  /** The pipeline of each target's own key: one lookup on the request path. */
  private readonly defaultPipelines = new WeakMap<ResolvedTargetPolicy, Pipeline>();
  private readonly fallbackProviders = new Map<Type<FallbackProvider>, Promise<FallbackProvider>>();
  private nextTargetId = 1;

  constructor(
    @Inject(RESOLVED_RESILIENCE_OPTIONS) readonly options: ResolvedResilienceOptions,
    @Inject(RESILIENCE_POLICY_ENVIRONMENT) readonly env: PolicyEnvironment,
    private readonly registry: PolicyRegistry,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly telemetry?: ResilienceTelemetry,
  ) {}

  /** Runs each attempt in its own tracing span when telemetry is on (a plain call without a tracer). */
  readonly wrapAttempt: AttemptWrapper = (policy, attempt, run) =>
    this.telemetry ? this.telemetry.withAttemptSpan(policy, attempt, run) : run();

  /**
   * The merged settings of `handler` declared by `classRef`, or `undefined` when neither carries a
   * resilience decorator (`methodName` defaults to `handler.name`). Cached.
   * @throws ResilienceConfigError for an unknown named policy.
   */
  targetFor(classRef: Function, handler: Function, methodName?: string): ResolvedTargetPolicy | undefined {
    let byClass = this.targets.get(handler);
    if (!byClass) {
      byClass = new Map();
      this.targets.set(handler, byClass);
    }
    const cached = byClass.get(classRef);
    if (cached !== undefined) return cached ?? undefined;
    // the name is read only here: a function's `name` is a slow accessor on every request
    const metadata = readTargetMetadata(classRef, handler, methodName ?? handler.name);
    const target = isDecorated(metadata) ? resolveTargetPolicy(this.options, metadata) : undefined;
    byClass.set(classRef, target ?? null);
    return target;
  }

  /** The core spec of `target` for `key`, its fallback (if any) wired to DI and the call's arguments. */
  specFor(target: ResolvedTargetPolicy, key: string = target.key): PipelineSpec {
    const spec = specWithoutFallback(target, key);
    if (!target.fallback) return spec;
    const fallback = target.fallback;
    return {
      ...spec,
      fallback: {
        handler: (error: unknown) => this.runFallback(fallback, error, currentInFrame('callArguments') ?? []),
        ...(fallback.on === undefined ? {} : { on: fallback.on }),
      },
    };
  }

  /** The resolved stages of `target`, outer → inner. */
  describe(target: ResolvedTargetPolicy): PipelineStage[] {
    return describePipeline(this.specFor(target));
  }

  /**
   * The policy key of one call: the key function's result, or the target's fixed key (then no
   * context object is built: this runs on every decorated request).
   */
  keyFor(target: ResolvedTargetPolicy, args: readonly unknown[], request?: unknown): string {
    if (!target.keyFn) return target.key;
    const context: PolicyKeyContext = { className: target.className, methodName: target.methodName, args, request };
    const key = target.keyFn(context);
    return typeof key === 'string' && key !== '' ? key : target.key;
  }

  /** The pipeline of `target` for `key` (created on first use; at most `maxPolicyKeys` per-call keys kept). */
  pipelineFor(target: ResolvedTargetPolicy, key: string = target.key): Pipeline {
    if (key === target.key) {
      let pipeline = this.defaultPipelines.get(target);
      if (!pipeline) {
        pipeline = createPipeline(this.specFor(target, key), this.env, this.registry);
        this.defaultPipelines.set(target, pipeline);
      }
      return pipeline;
    }
    let id = this.targetIds.get(target);
    if (id === undefined) {
      id = this.nextTargetId++;
      this.targetIds.set(target, id);
    }
    const cacheKey = `${id}\u0000${key}`;
    const cached = this.pipelines.get(cacheKey);
    if (cached) {
      if (target.keyFn) {
        // refresh recency so per-call keys in use are not the ones evicted
        this.pipelines.delete(cacheKey);
        this.pipelines.set(cacheKey, cached);
      }
      return cached;
    }
    const pipeline = createPipeline(this.specFor(target, key), this.env, this.registry);
    this.pipelines.set(cacheKey, pipeline);
    if (this.pipelines.size > this.options.maxPolicyKeys * 2) {
      const oldest = this.pipelines.keys().next().value;
      if (oldest !== undefined) this.pipelines.delete(oldest);
    }
    return pipeline;
  }

  private async runFallback(fallback: FallbackMetadata, error: unknown, args: readonly unknown[]): Promise<unknown> {
    const { source } = fallback;
    switch (source.kind) {
      case 'value':
        return source.value;
      case 'factory':
        return source.factory(error, ...args);
      case 'provider': {
        const provider = await this.fallbackProvider(source.provider);
        return provider.fallback(error, ...args);
      }
    }
  }

  /** Resolves a fallback provider class through DI: an existing provider, else a new instance. */
  fallbackProvider(type: Type<FallbackProvider>): Promise<FallbackProvider> {
    let provider = this.fallbackProviders.get(type);
    if (!provider) {
      provider = this.lookupProvider(type);
      this.fallbackProviders.set(type, provider);
      provider.catch(() => this.fallbackProviders.delete(type));
    }
    return provider;
  }

  private async lookupProvider(type: Type<FallbackProvider>): Promise<FallbackProvider> {
    try {
      return this.moduleRef.get(type, { strict: false });
    } catch {
      return this.moduleRef.create(type);
    }
  }
}

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
  /** Returns `true` once the response started (nothing may be retried after it). */
  readonly isCommitted?: () => boolean;
  /** Arguments of the call, for fallbacks. */
  readonly args: readonly unknown[];
  /** Policy key, request id, route and clock of every resilience context of the call. */
  readonly store: SharedStoreFields;
  /** Runs the whole call (between attempts too) in a context of its own, so events carry the request id. */
  readonly outerContext?: boolean;
  /** Wraps each attempt (an OpenTelemetry span per attempt). */
  readonly wrapAttempt?: AttemptWrapper;
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

function runCall<T>(pipeline: Pipeline, call: PipelineCall, root: Cancellation, run: () => T): T {
  // only a fallback reads the arguments: skip the extra context switch otherwise
  const inArguments = pipeline.stages[0]?.kind === 'fallback' ? () => runInFrame('callArguments', call.args, run) : run;
  return call.outerContext ? runWithResilienceContext(createContextStore(call.store, root, Infinity, 0), inArguments) : inArguments();
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
    const done: Settle = (failed, outcome) => {
      runAttemptCleanups(store);
      settle(failed, outcome);
    };
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

/** Calls `work` and settles with its result; an Observable result is awaited to its last value. */
function callWork(work: () => unknown, settle: Settle): void {
  let value: unknown;
  try {
    value = work();
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
        { cancellation: root, deadline: finiteOrUndefined(call.deadline), isCommitted: call.isCommitted },
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
    let open = true;
    const settle: Settle = (failed, outcome) => {
      if (!open) return;
      open = false;
      stopListening();
      settleAttempt(failed, outcome);
    };
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
