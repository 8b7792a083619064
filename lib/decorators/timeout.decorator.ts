import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type { TimeoutOptions } from '../core/options.js';
import { TIMEOUT_METADATA } from '../resilience.constants.js';

/**
 * Bounds the route or provider method in time and cancels its work through an `AbortSignal`.
 *
 * - `@Timeout({ total, attempt })`: `total` is the deadline of the whole call (queue wait and every
 *   retry included, never retried); `attempt` bounds each attempt (retried like a transient error).
 * - `@Timeout(ms)` is shorthand: `{ attempt: ms }` when the target also retries (`@Retryable()`
 *   or a named policy with `retry`), `{ total: ms }` otherwise. Because the same number means two
 *   things, a bare number on a retried target logs a warning at start-up: write `{ attempt }` or
 *   `{ total }` there.
 *
 * At expiry the response goes out (503 problem+json `code: "timeout"` by default, see
 * `forRoot({ timeout: { status } })`) even if the handler ignores the signal. Every decorated route
 * or method gets a 30 s total and a 10 s attempt timeout unless told otherwise (the attempt timeout
 * is capped at the total). Works on methods and classes; the method wins.
 * Careful: `@nestjs/schedule` also exports a `Timeout`; alias one of them on import.
 * @example
 * @Get(':id')
 * @Timeout({ total: 2_000 })
 * find(@Param('id') id: string, @AttemptSignal() signal: AbortSignal) { ... }
 * @example
 * @Retryable()
 * @Timeout({ total: 5_000, attempt: 1_500 })
 * list() { ... }
 * @publicApi
 */
export function Timeout(msOrOptions: number | TimeoutOptions): MethodDecorator & ClassDecorator {
  return recordAndBind(TIMEOUT_METADATA, typeof msOrOptions === 'number' ? msOrOptions : { ...msOrOptions });
}
