import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type { BulkheadDecoratorOptions } from '../interfaces/resilience-module-options.interface.js';
import { BULKHEAD_METADATA } from '../resilience.constants.js';

/**
 * Caps how many calls of the policy key run at once; up to `maxQueue` more wait (bounded by
 * `queueTimeout` and the deadline, and abandoned when the caller aborts). Others are rejected with
 * `BulkheadRejectedError`: HTTP 503 (or `rejectStatus: 429`) problem+json `code: "bulkhead_rejected"`
 * with `Retry-After`. Pass a string to use a named policy.
 * @example
 * @Post('render')
 * @Bulkhead({ maxConcurrent: 4, maxQueue: 8, queueTimeout: 2_000, rejectStatus: 429 })
 * render() { ... }
 * @publicApi
 */
export function Bulkhead(optionsOrPolicy: BulkheadDecoratorOptions | string = {}): MethodDecorator & ClassDecorator {
  return recordAndBind(
    BULKHEAD_METADATA,
    typeof optionsOrPolicy === 'string' ? { policy: optionsOrPolicy } : { ...optionsOrPolicy },
  );
}
