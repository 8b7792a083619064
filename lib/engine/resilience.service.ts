import { Inject, Injectable, RequestMethod, type OnApplicationBootstrap, type OnApplicationShutdown, type Type } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { ChaosControl } from '../core/fault-injection.js';
import type { PipelineStage } from '../core/pipeline.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { requireSharedState } from '../core/shared-policy-state.js';
import { validatePipelineSpec } from '../core/validate.js';
import type {
  ReloadableResilienceOptions,
  ResilienceModuleOptions,
  ResolvedResilienceOptions,
} from '../interfaces/resilience-module-options.interface.js';
import { RESILIENCE_POLICY_ENVIRONMENT } from '../resilience.constants.js';
import { resolveResilienceOptions } from './resilience-options.resolver.js';
import { ResiliencePipelines } from './resilience-pipelines.js';

/** Options chosen once at start-up: a reload that changes one is refused (they need a restart). */
const FIXED_OPTIONS = ['clock', 'random', 'sharedState', 'idempotency', 'errorMapper', 'maxPolicyKeys', 'logging', 'telemetry', 'chaos', 'reloads'] as const;

/**
 * What a reload changed.
 * @publicApi
 */
export interface OptionsReloadResult {
  /** The top-level options the reload gave. */
  readonly changed: readonly string[];
  /** State that a changed option could not keep, one sentence each (also in the `options_reloaded` event). */
  readonly resets: readonly string[];
}

/**
 * Introspection of the resilience settings the application runs with, and their reload.
 * @publicApi
 */
@Injectable()
// constructed by ResilienceModule's factory provider, which hands it the module options as given
export class ResilienceService implements OnApplicationBootstrap, OnApplicationShutdown {
  /** The module options in force, as given (before defaults): what the next reload is merged over. */
  private current: ResilienceModuleOptions;
  private subscription: { unsubscribe(): void } | undefined;

  constructor(
    private readonly pipelines: ResiliencePipelines,
    @Inject(RESILIENCE_POLICY_ENVIRONMENT) private readonly env: PolicyEnvironment,
    private readonly registry: PolicyRegistry,
    /** The module options as given (`ResilienceModule` provides them). */
    options: ResilienceModuleOptions | undefined,
    /** The runtime chaos rules, when `forRoot({ chaos: { enabled: true } })`. */
    private readonly chaosControl?: ChaosControl | null,
  ) {
    this.current = { ...options };
  }

  /**
   * The runtime chaos rules of the application (`forRoot({ chaos: { enabled: true } })`): switch
   * rules on and off (`inject`, `switch`, `remove`, `clear`), list them, reseed the draws. An injected
   * fault goes through the real policies (a retry retries it, a breaker counts it) and everything it
   * causes is marked `resilience.chaos=true` in logs, spans and metrics.
   * @example
   * resilience.chaos().inject({ id: 'slow-model', target: { httpClient: 'model' }, fault: { kind: 'latency', ms: 1500 }, rate: 1 });
   * @throws ResilienceConfigError when chaos is not enabled (no pipeline has an injection stage then).
   */
  chaos(): ChaosControl {
    if (!this.chaosControl) {
      throw new ResilienceConfigError(
        'Runtime chaos is off in this application. Enable it with ResilienceModule.forRoot({ chaos: { enabled: true } }) (refused with NODE_ENV=production unless chaos.allowInProduction: true).',
      );
    }
    return this.chaosControl;
  }

  /**
   * The pipeline of a route or provider method as it runs: its stages outer → inner (fallback,
   * bulkhead, total-timeout, retry, circuit-breaker, rate-limit, attempt-timeout) with every option
   * resolved (module defaults, named policy, class and method decorators merged). Empty when the
   * method carries no resilience decorator. Decorator order never changes the result.
   * @example
   * expect(resilience.describe(ReportsController, 'list').map((s) => s.kind)).toEqual(['total-timeout', 'retry', 'attempt-timeout']);
   * @throws Error when `methodName` is not a method of `target`.
   */
  describe(target: Type, methodName: string): PipelineStage[] {
    const method: unknown = (target.prototype as Record<string, unknown>)[methodName];
    if (typeof method !== 'function') {
      throw new Error(`${target.name}.${methodName} is not a method. Pass the class and the name of one of its methods.`);
    }
    const resolved = this.pipelines.targetFor(target, method, methodName);
    return resolved ? this.pipelines.describe(resolved) : [];
  }

  /** The policy key of a route or provider method (its breaker, bulkhead and budget key), or `undefined` when undecorated. */
  policyKey(target: Type, methodName: string): string | undefined {
    const method: unknown = (target.prototype as Record<string, unknown>)[methodName];
    if (typeof method !== 'function') return undefined;
    return this.pipelines.targetFor(target, method, methodName)?.key;
  }

  /**
   * Applies new module options without a restart. `options` is merged over the options in force
   * (each top-level option given replaces the one in force; `policies` are replaced per name), then
   * validated like at start-up, every decorated route and method included: an invalid reload throws
   * the start-up error (same text) and changes nothing (`options_reload_refused`). A valid one is
   * applied at once, every policy key atomically: the next call runs with the new options, and each
   * breaker, bulkhead, retry budget and rate limit keeps its state (an open breaker stays open for its
   * current break; calls in a bulkhead keep their slots; budget counters stay), except where a
   * changed option cannot keep it: a breaker's `strategy` or `slowCall` (its window restarts),
   * `shared` (a new breaker), a budget's `window` (its counters restart), a rate (a new in-process
   * bucket). Those are listed in the answer and the `options_reloaded` event (logged). HTTP clients
   * keep the options they were created with.
   * @example
   * resilience.reload({ circuitBreaker: { strategy: { type: 'consecutive', threshold: 10 } } });
   * @throws ResilienceConfigError (the start-up text) when the merged options can never work, or
   * when `options` changes one chosen at start-up (clock, random, sharedState, idempotency,
   * errorMapper, maxPolicyKeys, logging, telemetry, chaos, reloads).
   */
  reload(options: ReloadableResilienceOptions): OptionsReloadResult {
    const changed = Object.keys(options ?? {});
    let next: ResilienceModuleOptions;
    let resolved: ResolvedResilienceOptions;
    let targets: ReturnType<ResiliencePipelines['resolveAll']>;
    try {
      if (options === null || typeof options !== 'object') {
        throw new ResilienceConfigError(`ResilienceService.reload() was given ${String(options)}. Pass an object of module options, e.g. { retry: { maxAttempts: 2 } }.`);
      }
      const fixed = FIXED_OPTIONS.filter((name) => name in options && (options as Record<string, unknown>)[name] !== this.current[name]);
      if (fixed.length > 0) {
        throw new ResilienceConfigError(`ResilienceService.reload() cannot change ${fixed.join(', ')}: chosen at start-up. Restart the application to change it, or leave it out of the reload.`);
      }
      next = { ...this.current, ...options, ...(options.policies === undefined ? {} : { policies: { ...this.current.policies, ...options.policies } }) };
      resolved = resolveResilienceOptions(next);
      targets = this.pipelines.resolveAll(resolved);
      for (const { next: target } of targets) {
        const spec = this.pipelines.specFor(target);
        const where = whereOf(target.where, target.className, target.methodName, this.pipelines);
        validatePipelineSpec(spec, where);
        requireSharedState(spec, where, resolved.sharedState);
      }
    } catch (error) {
      this.env.events({ event: 'options_reload_refused', policy: 'options', detail: error instanceof Error ? error.message : String(error), error });
      throw error;
    }
    this.pipelines.apply(resolved, targets);
    this.current = next;
    const resets = this.registry.takeResets();
    this.env.events({
      event: 'options_reloaded',
      policy: 'options',
      detail: `${changed.join(', ') || 'nothing'} changed${resets.length === 0 ? '; every policy kept its state' : `; reset: ${resets.join('; ')}`}`,
    });
    return { changed, resets };
  }

  /** Subscribes to `forRoot({ reloads })`, once the application has started. */
  onApplicationBootstrap(): void {
    const source = this.current.reloads;
    if (source === undefined || this.subscription !== undefined) return;
    this.subscription = source.subscribe((options) => {
      try {
        this.reload(options);
      } catch {
        // refused: the options_reload_refused event (logged) says why, and the options in force stay
      }
    });
  }

  /** Stops listening to `forRoot({ reloads })`. */
  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }
}

/** `GET Class.method` for a route (as the start-up checks name it), `Class.method` for a provider method. */
function whereOf(where: string, className: string, methodName: string, pipelines: ResiliencePipelines): string {
  const handler = pipelines.handlerOf(className, methodName);
  const requestMethod = handler === undefined ? undefined : (Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined);
  return requestMethod === undefined ? where : `${RequestMethod[requestMethod] ?? 'GET'} ${where}`;
}
