import { Injectable, type Type } from '@nestjs/common';
import type { PipelineStage } from '../core/pipeline.js';
import { ResiliencePipelines } from './resilience-pipelines.js';

/**
 * Introspection of the resilience settings the application runs with.
 * @publicApi
 */
@Injectable()
export class ResilienceService {
  constructor(private readonly pipelines: ResiliencePipelines) {}

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
