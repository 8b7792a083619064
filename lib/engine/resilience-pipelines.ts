import { Inject, Injectable, Optional, type Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import { ModuleRef } from '@nestjs/core';
import { currentInFrame } from '../context/context-frame.js';
import { getRequestInfo } from '../context/resilience-context.js';
import { ChaosControl, type PipelineChaos } from '../core/fault-injection.js';
import type { PipelineSpec } from '../core/options.js';
import { FallbackPolicy } from '../core/fallback.policy.js';
import { isStaleWorthy, resolveLastGood, type LastGoodOptions, type LastGoodStore } from '../core/last-good.js';
import { NO_FALLBACK } from '../core/options.js';
import { createPipeline, describePipeline, type Pipeline, type PipelineStage } from '../core/pipeline.js';
import type { PolicyEnvironment } from '../core/policy.js';
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
  type TargetMetadata,
} from './resilience-options.resolver.js';
import type { AttemptWrapper } from './pipeline-call.js';

/** The route of the request being served (`METHOD /path`), as the logs show it. */
function currentRoute(): string | undefined {
  return getRequestInfo()?.route;
}

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
  private defaultPipelines = new WeakMap<ResolvedTargetPolicy, Pipeline>();
  /** Every decorated target resolved so far, with what it was read from: re-resolved by a reload. */
  private readonly known: Array<{ readonly metadata: TargetMetadata & { readonly handler: Function }; readonly target: ResolvedTargetPolicy }> = [];
  private readonly fallbackProviders = new Map<Type<FallbackProvider>, Promise<FallbackProvider>>();
  /** Targets that are route handlers: their pipelines read the route of each call for chaos rules. */
  private readonly routeTargets = new WeakSet<ResolvedTargetPolicy>();
  /** The last-good cache of each method with `@Fallback({ lastGood })` (`Class.method`), whatever its policy keys. */
  private readonly lastGoodCaches = new Map<string, LastGoodStore>();
  private nextTargetId = 1;

  constructor(
    @Inject(RESOLVED_RESILIENCE_OPTIONS) readonly options: ResolvedResilienceOptions,
    @Inject(RESILIENCE_POLICY_ENVIRONMENT) readonly env: PolicyEnvironment,
    private readonly registry: PolicyRegistry,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly telemetry?: ResilienceTelemetry,
    @Optional() @Inject(ChaosControl) private readonly chaos?: ChaosControl | null,
  ) {}

  /** Runs each attempt in its own tracing span when telemetry is on (a plain call without a tracer). */
  readonly wrapAttempt: AttemptWrapper = (policy, attempt, run) =>
    this.telemetry ? this.telemetry.withAttemptSpan(policy, attempt, run) : run();

  /**
   * What wraps the attempts of a call starting now: {@link wrapAttempt} while attempt spans are
   * recorded, else nothing, and the attempts run in callback form (the wrapper's promise API costs
   * two promises per attempt and settles a synchronous handler a turn later).
   */
  attemptWrapper(): AttemptWrapper | undefined {
    return this.telemetry?.tracesAttempts() ? this.wrapAttempt : undefined;
  }

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
    const metadata = { ...readTargetMetadata(classRef, handler, methodName ?? handler.name), handler };
    const target = isDecorated(metadata) ? resolveTargetPolicy(this.options, metadata) : undefined;
    if (target !== undefined && Reflect.getMetadata(PATH_METADATA, handler) !== undefined) this.routeTargets.add(target);
    byClass.set(classRef, target ?? null);
    if (target !== undefined) this.known.push({ metadata, target });
    return target;
  }

  /** The handler a known target was read from (by class and method name), if any. */
  handlerOf(className: string, methodName: string): Function | undefined {
    return this.known.find(({ metadata }) => metadata.className === className && metadata.methodName === methodName)?.metadata.handler;
  }

  /**
   * Every decorated target resolved against `options` (a reload's), each with the spec it would
   * run with, without changing anything.
   * @throws ResilienceConfigError naming the target and the fix, as at start-up.
   */
  resolveAll(options: ResolvedResilienceOptions): Array<{ readonly current: ResolvedTargetPolicy; readonly next: ResolvedTargetPolicy }> {
    return this.known.map(({ metadata, target }) => ({ current: target, next: resolveTargetPolicy(options, metadata) }));
  }

  /**
   * Switches every target to its reloaded settings at once (resolved by {@link resolveAll}): each
   * target object is updated in place (callers holding it see the new settings), the pipelines are
   * rebuilt from them, and the registry's policies take their new options keeping their state
   * (`PolicyRegistry.reconfigure`). Per-call keys rebuild their pipeline on their next call.
   */
  apply(options: ResolvedResilienceOptions, resolved: ReadonlyArray<{ readonly current: ResolvedTargetPolicy; readonly next: ResolvedTargetPolicy }>): void {
    Object.assign(this.options as object, options);
    for (const { current, next } of resolved) {
      for (const field of Object.keys(current)) if (!(field in next)) delete (current as unknown as Record<string, unknown>)[field];
      Object.assign(current, next);
    }
    this.registry.reconfigure();
    this.defaultPipelines = new WeakMap();
    this.pipelines.clear();
    for (const { current } of resolved) if (!current.keyFn) this.pipelineFor(current);
  }

  /**
   * The core spec of `target` for `key`, its fallback (if any) wired to DI and the call's arguments,
   * and the chaos rules' injection stage when chaos is enabled.
   */
  specFor(target: ResolvedTargetPolicy, key: string = target.key): PipelineSpec {
    const spec = this.chaos ? { ...specWithoutFallback(target, key), chaos: this.chaosOf(target, key, this.chaos) } : specWithoutFallback(target, key);
    if (!target.fallback) return spec;
    const fallback = target.fallback;
    const args = () => currentInFrame('callArguments') ?? [];
    if (fallback.lastGood === undefined) {
      return {
        ...spec,
        fallback: {
          handler: (error: unknown) => this.runFallback(fallback, error, args()),
          ...(fallback.on === undefined ? {} : { on: fallback.on }),
        },
      };
    }
    const cache = this.lastGoodCacheFor(target.where, fallback.lastGood);
    const keyFn = fallback.lastGood.key;
    const callKey = () => lastGoodKeyOf(keyFn, args());
    // the fallback's own source decides by `on`; the last good result by isStaleWorthy
    const own = new FallbackPolicy({ handler: () => undefined, ...(fallback.on === undefined ? {} : { on: fallback.on }) }, this.env);
    const hasOwn = fallback.source.kind !== 'none';
    const ownOrNothing = (error: unknown) => (hasOwn && own.handles(error) ? this.runFallback(fallback, error, args()) : NO_FALLBACK);
    return {
      ...spec,
      fallback: {
        on: (error) => (isStaleWorthy(error) && cache.mayHave(callKey())) || (hasOwn && own.handles(error)),
        // a shared cache is asked asynchronously: when it has nothing after all, the call fails as
        // it would have without a fallback (no fallback_used)
        mayDecline: true,
        handler: (error: unknown) => {
          if (!isStaleWorthy(error)) return ownOrNothing(error);
          const stale = cache.lookup(callKey());
          return stale instanceof Promise ? stale.then((found) => found ?? ownOrNothing(error)) : (stale ?? ownOrNothing(error));
        },
        onSuccess: (value) => cache.set(callKey(), value),
      },
    };
  }

  /** What chaos rules see of `target`'s pipeline for `key`: the policy, the method and (per call) the route. */
  private chaosOf(target: ResolvedTargetPolicy, key: string, control: ChaosControl): PipelineChaos {
    const site = { policy: key, method: `${target.className}.${target.methodName}` };
    return this.routeTargets.has(target) ? { control, site, routeOf: currentRoute } : { control, site };
  }

  /** The last-good cache of one method (kept as long as the app). */
  private lastGoodCacheFor(where: string, options: LastGoodOptions): LastGoodStore {
    let cache = this.lastGoodCaches.get(where);
    if (cache === undefined) {
      const at = `@Fallback() on ${where}`;
      cache = this.registry.lastGoodCache(where, resolveLastGood(options, at), at);
      this.lastGoodCaches.set(where, cache);
    }
    return cache;
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
      case 'none':
        throw error;
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

/** The last-good key of a call: the `key` option's answer, else its arguments as JSON ('' when they are not plain data). */
function lastGoodKeyOf(keyFn: ((...args: any[]) => string) | undefined, args: readonly unknown[]): string {
  if (keyFn !== undefined) return String(keyFn(...args));
  try {
    return JSON.stringify(args) ?? '';
  } catch {
    return '';
  }
}
