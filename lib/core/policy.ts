import type { Clock } from './clock.js';
import type { DeadlineQueue } from './deadline-queue.js';
import type { Random } from './random.js';
import type { ResilienceEventSink } from './events.js';

/**
 * What a policy hands to the work it wraps. Policies derive a new context for the inner work
 * (a shorter deadline, a child signal, the attempt number) and never mutate the one they got.
 * @publicApi
 */
export interface PolicyContext {
  /**
   * Aborted when the work should stop: attempt timeout, deadline, caller abort. In contexts built
   * by the library it is an accessor that creates the signal on first read (an unread signal costs
   * nothing), so derive a context by listing its fields, not by spreading it.
   */
  readonly signal: AbortSignal;
  /** Absolute deadline on the policy clock (ms), `Infinity` when there is none. */
  readonly deadline: number;
  /** 1-based attempt number (always 1 outside a retry policy). */
  readonly attempt: number;
  /** The error of the previous attempt, when this is a retry. */
  readonly previousError?: unknown;
  /** Policy key: the named policy, or `Class.method`. Keys breaker, bulkhead and budget state. */
  readonly policy: string;
}

/**
 * A unit of resilience behaviour (retry, timeout, breaker, …) that wraps asynchronous work.
 * Policies compose: the outer policy's `fn` runs the inner policy.
 * @publicApi
 */
export interface Policy {
  /** Runs `fn` under this policy. */
  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T>;
}

/**
 * The services every policy may use: time, randomness and the event sink.
 * @publicApi
 */
export interface PolicyEnvironment {
  /** Time source of timers, deadlines and windows. */
  readonly clock: Clock;
  /** Randomness source of jitter. */
  readonly random: Random;
  /** Where the policies report their events. */
  readonly events: ResilienceEventSink;
  /**
   * Where timeouts put their deadlines: one timer for every call of the environment instead of a
   * `setTimeout` and a `clearTimeout` per call (timeouts still fire exactly at their limit). Without
   * it each timeout arms a timer of its own on `clock`. Give it the same `clock`.
   */
  readonly deadlines?: DeadlineQueue;
}

/**
 * A context for work that has no caller signal and no deadline.
 * @internal
 */
export function rootContext(policy: string, signal: AbortSignal = new AbortController().signal): PolicyContext {
  return { signal, deadline: Infinity, attempt: 1, policy };
}
