/**
 * Thrown by {@link raceWithTimeout} when the work did not settle in time.
 * @internal
 */
export class HealthCheckTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`did not answer within ${timeoutMs} ms`);
    this.name = 'HealthCheckTimeoutError';
  }
}

/**
 * Runs `work` with an `AbortSignal` that is aborted after `timeoutMs`, and rejects with
 * {@link HealthCheckTimeoutError} at that moment even if `work` ignores the signal (a hung
 * connection must not hang the probe). The timer is always cleared.
 * @internal
 */
export async function raceWithTimeout<T>(timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new HealthCheckTimeoutError(timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([work(controller.signal), timedOut]);
  } finally {
    clearTimeout(timer);
    if (!controller.signal.aborted) controller.abort();
  }
}

/**
 * Milliseconds elapsed since `start` (from `performance.now()`), rounded to 0.1 ms.
 * @internal
 */
export function elapsedSince(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

/**
 * A short reason for a failed check: the timeout, the system error code, or the error message.
 * @internal
 */
export function describeFailure(error: unknown): string {
  if (error instanceof HealthCheckTimeoutError) return `timed out: ${error.message}`;
  const code = systemErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

/**
 * The `code` of a Node system error, also when it is wrapped as `cause` (undici's `fetch failed`).
 * @internal
 */
export function systemErrorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
