import type { Type } from '@nestjs/common';
import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type {
  FallbackDecoratorOptions,
  FallbackFactory,
  FallbackMetadata,
  FallbackProvider,
  FallbackSource,
} from '../interfaces/resilience-module-options.interface.js';
import { ResilienceConfigError } from '../core/errors.js';
import { FALLBACK_METADATA } from '../resilience.constants.js';

/**
 * Answers with a degraded result instead of an error when the call times out, its circuit is open,
 * its bulkhead rejects it or its retries are exhausted (change the list with `on`). The source is:
 * - a value, returned as is (to return a function, wrap it in a factory);
 * - a factory `(error, ...args) => result` called with the error and the call's arguments
 *   (for routes, the handler's own arguments, after pipes: add `@Req()` to the handler to get the request);
 * - a provider class implementing `FallbackProvider`, resolved through DI, whose
 *   `fallback(error, ...args)` is called.
 * With `lastGood`, the last good result of the same call is served first while the breaker is open
 * or the call fails transiently (never past its `ttl`; a route adds `Resilience-Stale: <age s>`);
 * `@Fallback({ lastGood: { ttl } })` serves it alone. A client disconnect never triggers it. Works
 * on methods and classes; the method wins.
 * @example
 * @Get('recommendations')
 * @Timeout(800)
 * @Fallback([])
 * recommendations() { ... }
 * @example
 * @Fallback((error, userId: string) => ({ userId, status: 'unknown' }), { on: ['timeout'] })
 * @example
 * @Fallback(CachedQuoteFallback)
 * @example
 * @Fallback({ lastGood: { ttl: 60_000, key: (city: string) => city } })
 * @publicApi
 */
export function Fallback<T = unknown>(
  source: T | FallbackFactory<T> | Type<FallbackProvider<T>>,
  options: FallbackDecoratorOptions = {},
): MethodDecorator & ClassDecorator {
  // `@Fallback({ lastGood })`: the last good result alone, no other source
  const lastGoodOnly = isLastGoodOnly(source);
  const metadata: FallbackMetadata = lastGoodOnly ? { ...(source as FallbackDecoratorOptions), ...options, source: { kind: 'none' } } : { ...options, source: toFallbackSource(source) };
  return recordAndBind(FALLBACK_METADATA, metadata);
}

/** Whether `@Fallback()`'s first argument is `{ lastGood, on? }` alone (options, not a value). */
function isLastGoodOnly(source: unknown): boolean {
  if (source === null || typeof source !== 'object' || Object.getPrototypeOf(source) !== Object.prototype) return false;
  const keys = Object.keys(source);
  return keys.includes('lastGood') && keys.every((key) => key === 'lastGood' || key === 'on');
}

/**
 * Classifies what `@Fallback()` was given: a class with a `fallback` method is a provider, any other
 * function a factory, everything else a value.
 * @throws ResilienceConfigError for a class without a `fallback()` method.
 * @internal
 */
export function toFallbackSource(source: unknown): FallbackSource {
  if (typeof source === 'function') {
    const prototype = (source as { prototype?: { fallback?: unknown } }).prototype;
    if (prototype && typeof prototype.fallback === 'function') {
      return { kind: 'provider', provider: source as Type<FallbackProvider> };
    }
    if (Function.prototype.toString.call(source).startsWith('class')) {
      throw new ResilienceConfigError(
        `@Fallback(${(source as Function).name}) was given a class without a fallback() method. Implement FallbackProvider (fallback(error, ...args)) on it, or pass a factory function.`,
      );
    }
    return { kind: 'factory', factory: source as FallbackFactory };
  }
  return { kind: 'value', value: source };
}
