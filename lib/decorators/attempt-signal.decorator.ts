import { contextParameter } from '../engine/binding/bound-method.js';
import { currentSignal } from '../context/resilience-context.js';

/**
 * Injects the `AbortSignal` of the current attempt into a route handler parameter. It is aborted at
 * the attempt timeout, at the deadline and when the client disconnects; a retry gets a fresh one
 * . `undefined` on a route without resilience
 * decorators.
 * @example
 * @Get(':id')
 * @Timeout(2_000)
 * find(@Param('id') id: string, @AttemptSignal() signal: AbortSignal) {
 *   return fetch(`${api}/items/${id}`, { signal });
 * }
 * @publicApi
 */
export const AttemptSignal: () => ParameterDecorator = contextParameter(currentSignal);
