const INJECTED_FAULT_ERROR = Symbol.for('nest-resilience.injected-fault-error');

/** Every error a chaos rule raised (the user's own errors included): logs, spans and metrics mark what they caused. */
const injected = new WeakSet<object>();

/**
 * The typed transient error a chaos rule injects when it names no error of its own: the retry
 * classifier treats it as transient (it is retried), the breaker counts it as a failure, and a route
 * that cannot recover answers 503 `upstream_unavailable`, as for a dependency that failed.
 * @publicApi
 */
export class InjectedFaultError extends Error {
  /** @internal marker that survives duplicated module copies (instanceof does not). */
  readonly [INJECTED_FAULT_ERROR] = true;

  constructor(
    /** Id of the chaos rule that injected it. */
    readonly rule: string,
    /** Policy key of the pipeline it was injected into. */
    readonly policy: string,
  ) {
    super(`Chaos rule "${rule}" injected a transient fault into ${policy}.`);
    this.name = 'InjectedFaultError';
  }
}

/** Whether `error` is an {@link InjectedFaultError} (the typed transient fault). @publicApi */
export function isInjectedFaultError(error: unknown): error is InjectedFaultError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[INJECTED_FAULT_ERROR] === true;
}

/**
 * Whether a chaos rule raised `error` (an {@link InjectedFaultError}, the error a rule names, or the
 * `UpstreamHttpError` of an injected HTTP outcome).
 * @publicApi
 */
export function isInjectedFault(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (injected.has(error) || isInjectedFaultError(error));
}

/** Marks `error` as raised by a chaos rule; returns it. @internal */
export function markInjectedFault<T>(error: T): T {
  if (typeof error === 'object' && error !== null) injected.add(error);
  return error;
}
