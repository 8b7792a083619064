// The defaults every caller of the policies shares: the engine's decorated routes and methods, the
// HttpClient, and core's own option resolvers. A default that only one option resolver reads is
// written where it is read (validate.ts) and documented on its option (options.ts).
import type { FallbackCause, RetryBudgetOptions } from './options.js';

/** Deadline of a decorated route or method (and of an HttpClient call) when nothing else is configured. @publicApi */
export const DEFAULT_TOTAL_TIMEOUT_MS = 30_000;
/** Attempt timeout of a decorated route or method (and of an HttpClient call) when nothing else is configured. @publicApi */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
/** Default of `maxPolicyKeys`. @publicApi */
export const DEFAULT_MAX_POLICY_KEYS = 1000;

/** Defaults of the exponential backoff. @internal */
export const DEFAULT_BACKOFF = { type: 'exponential', base: 100, factor: 2, jitter: 'full' } as const;

/** Retry budget defaults: 20 % of calls over 10 s, floor 10 retries/s. @publicApi */
export const DEFAULT_RETRY_BUDGET: Required<RetryBudgetOptions> = Object.freeze({ ratio: 0.2, window: 10_000, minRetriesPerSecond: 10, shared: false });

/** Causes a fallback catches when `on` is not given. @publicApi */
export const DEFAULT_FALLBACK_ON: readonly FallbackCause[] = Object.freeze(['timeout', 'circuit_open', 'bulkhead_rejected', 'retries_exhausted', 'transient']);
