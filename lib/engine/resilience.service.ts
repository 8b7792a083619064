import { Inject, Injectable, Optional, type Type } from '@nestjs/common';
import { ResilienceConfigError } from '../core/errors.js';
import { ChaosControl } from '../core/fault-injection.js';
import type { PipelineStage } from '../core/pipeline.js';
import { ResiliencePipelines } from './resilience-pipelines.js';

/**
 * Introspection of the resilience settings the application runs with.
 * @publicApi
 */
@Injectable()
export class ResilienceService {
  constructor(
    private readonly pipelines: ResiliencePipelines,
    @Optional() @Inject(ChaosControl) private readonly chaosControl?: ChaosControl | null,
  ) {}

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
   * bulkhead, total-timeout, retry, circuit-breaker, attempt-timeout) with every option resolved
   * (module defaults, named policy, class and method decorators merged). Empty when the method
   * carries no resilience decorator. Decorator order never changes the result.
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
}
