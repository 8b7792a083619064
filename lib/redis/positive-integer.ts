import { ResilienceConfigError } from '../core/errors.js';

/**
 * `value` when it is a positive integer, else a start-up error naming the option and an example.
 * @internal
 */
export function positiveInteger(owner: string, name: string, value: number, example: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new ResilienceConfigError(`${owner}: ${name} must be a positive integer (got ${String(value)}); e.g. ${name}: ${example}.`);
  }
  return value;
}
