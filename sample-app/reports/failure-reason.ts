import { isAttemptTimeoutError, isCircuitOpenError, isDeadlineExceededError, isRetriesExhaustedError } from 'nest-resilience';
import type { ReportFailureReason } from './report.entity.js';

/** Maps the error a generation gave up with to the `reason` stored on the failed report. */
export function failureReason(error: unknown): ReportFailureReason {
  const chain = causes(error);
  if (chain.some(isCircuitOpenError)) return 'circuit_open';
  if (chain.some((cause) => isDeadlineExceededError(cause) || isAttemptTimeoutError(cause))) return 'timeout';
  return 'model_error';
}

/** How many model calls a failed generation made, when the error says so. */
export function attemptsOf(error: unknown): number | null {
  return causes(error).find(isRetriesExhaustedError)?.attempts ?? null;
}

function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current = error;
  while (current !== undefined && current !== null && chain.length < 10 && !chain.includes(current)) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}
