const RESILIENCE_ERROR = Symbol.for('nest-resilience.error');

/**
 * Base class of every error the library raises. `code` is stable and is the `code` member of the
 * problem+json body when the error reaches an HTTP client.
 * @publicApi
 */
export abstract class ResilienceError extends Error {
  /** Stable machine-readable code, e.g. `"timeout"` or `"circuit_open"`. */
  abstract readonly code: string;
  /** @internal marker that survives duplicated module copies (instanceof does not). */
  readonly [RESILIENCE_ERROR] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * One attempt ran longer than its attempt timeout. The attempt's `AbortSignal` was aborted with this
 * error as its reason. Retryable by default.
 * @publicApi
 */
export class AttemptTimeoutError extends ResilienceError {
  readonly code = 'attempt_timeout';
  constructor(
    /** The attempt timeout that elapsed, in ms. */
    readonly timeoutMs: number,
    /** 1-based number of the attempt that timed out. */
    readonly attempt = 1,
  ) {
    super(`Attempt ${attempt} did not finish within its ${timeoutMs} ms attempt timeout.`);
  }
}

/**
 * The total deadline of the operation passed. Never retried.
 * @publicApi
 */
export class DeadlineExceededError extends ResilienceError {
  readonly code = 'timeout';
  constructor(
    /** The total timeout that elapsed, in ms. */
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`The operation did not finish within its ${timeoutMs} ms deadline.`, options);
  }
}

/**
 * Every permitted attempt failed with a retryable error. `cause` is the last attempt's error.
 * @publicApi
 */
export class RetriesExhaustedError extends ResilienceError {
  readonly code = 'retries_exhausted';
  constructor(
    /** How many attempts ran, the first included. */
    readonly attempts: number,
    /** The last attempt's error. */
    override readonly cause: unknown,
  ) {
    super(`All ${attempts} attempts failed; the last error was: ${describeError(cause)}`, { cause });
  }
}

/**
 * The caller gave up: the client disconnected or a parent signal was aborted. Never retried.
 * @publicApi
 */
export class OperationAbortedError extends ResilienceError {
  readonly code = 'aborted';
  constructor(reason?: unknown) {
    super(`The operation was aborted by its caller${reason === undefined ? '' : `: ${describeError(reason)}`}.`, {
      cause: reason,
    });
  }
}

/**
 * The circuit breaker is open (or half-open with all probes taken): the call was not made.
 * @publicApi
 */
export class CircuitOpenError extends ResilienceError {
  readonly code = 'circuit_open';
  constructor(
    /** The breaker's policy key. */
    readonly policy: string,
    /** How long until the breaker lets a probe through, in ms. */
    readonly retryAfterMs: number,
  ) {
    super(`The circuit "${policy}" is open; calls are refused for another ${Math.ceil(retryAfterMs)} ms.`);
  }
}

/**
 * The bulkhead is full (all slots busy and the queue full) or a queued call waited too long.
 * @publicApi
 */
export class BulkheadRejectedError extends ResilienceError {
  readonly code = 'bulkhead_rejected';
  constructor(
    /** The bulkhead's policy key. */
    readonly policy: string,
    /** A hint for how long the caller should wait before trying again, in ms. */
    readonly retryAfterMs: number,
    /** Why the call was rejected. */
    readonly reason: 'full' | 'queue_timeout' = 'full',
  ) {
    super(
      reason === 'full'
        ? `The bulkhead "${policy}" is full; the call was rejected without running.`
        : `The call waited too long in the bulkhead "${policy}" queue and was removed without running.`,
    );
  }
}

/**
 * A configuration that can never work was given (for example an attempt timeout longer than the
 * total timeout). Raised at application start, its message names the fix.
 * @publicApi
 */
export class ResilienceConfigError extends ResilienceError {
  readonly code = 'config_invalid';
}

/** Whether `error` is any error raised by this library. @publicApi */
export function isResilienceError(error: unknown): error is ResilienceError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[RESILIENCE_ERROR] === true;
}

function hasCode<T extends ResilienceError>(code: string) {
  return (error: unknown): error is T => isResilienceError(error) && error.code === code;
}

/** Whether `error` is an {@link AttemptTimeoutError}. @publicApi */
export const isAttemptTimeoutError = hasCode<AttemptTimeoutError>('attempt_timeout');
/** Whether `error` is a {@link DeadlineExceededError}. @publicApi */
export const isDeadlineExceededError = hasCode<DeadlineExceededError>('timeout');
/** Whether `error` is a {@link RetriesExhaustedError}. @publicApi */
export const isRetriesExhaustedError = hasCode<RetriesExhaustedError>('retries_exhausted');
/** Whether `error` is an {@link OperationAbortedError}. @publicApi */
export const isOperationAbortedError = hasCode<OperationAbortedError>('aborted');
/** Whether `error` is a {@link CircuitOpenError}. @publicApi */
export const isCircuitOpenError = hasCode<CircuitOpenError>('circuit_open');
/** Whether `error` is a {@link BulkheadRejectedError}. @publicApi */
export const isBulkheadRejectedError = hasCode<BulkheadRejectedError>('bulkhead_rejected');
/** Whether `error` is a {@link ResilienceConfigError}. @publicApi */
export const isResilienceConfigError = hasCode<ResilienceConfigError>('config_invalid');

/** @internal one-line description of any thrown value, for messages. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
