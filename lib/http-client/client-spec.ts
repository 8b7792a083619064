// What a client is made of before its first call: its options checked (a bad one stops the app at
// start-up with the fix named) and merged over the named policy and the module defaults into the
// spec its pipelines are built from.

import { ResilienceConfigError } from '../core/errors.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS, DEFAULT_TOTAL_TIMEOUT_MS } from '../core/defaults.js';
import type { ChaosControl } from '../core/fault-injection.js';
import type { BulkheadOptions, CircuitBreakerOptions, PipelineSpec, RetryOptions, TimeoutOptions } from '../core/options.js';
import type { PolicyEnvironment } from '../core/policy.js';
import type { PolicyRegistry } from '../core/policy-registry.js';
import { resolveRateLimit } from '../core/rate-limiter.js';
import type { UpstreamError } from '../core/upstream-http.error.js';
import type { NamedPolicyOptions } from '../interfaces/resilience-module-options.interface.js';
import type { HttpCallRecord, HttpClientOptions } from './http-client.options.js';

/**
 * The module-wide settings a client starts from (what `ResilienceModule.forRoot()` resolved).
 * @publicApi
 */
export interface HttpClientDefaults {
  /** Module retry defaults (`forRoot({ retry })`); a client adds `maxAttempts: 3` under them. @default {} */
  readonly retry?: RetryOptions;
  /** Module timeouts (`forRoot({ timeout })`). @default { total: 30_000, attempt: 10_000 } */
  readonly timeout?: TimeoutOptions;
  /** Module breaker defaults (`forRoot({ circuitBreaker })`). @default {} (the breaker's own defaults) */
  readonly circuitBreaker?: CircuitBreakerOptions;
}

/**
 * What a client shares with the rest of the application. `ResilientHttpModule` passes the
 * `ResilienceModule`'s; standalone clients get their own.
 * @publicApi
 */
export interface HttpClientDependencies {
  /** Clock, randomness and event sink of the policies. @default systemClock, systemRandom, no events */
  readonly env?: PolicyEnvironment;
  /**
   * Where breaker, bulkhead and retry budget state lives (keyed `http:<client>@<origin>`); its
   * `sharedState` backend serves the client's `circuitBreaker.shared` and `retry.budget.shared`.
   * @default a registry of its own (no shared state)
   * @example
   * new PolicyRegistry(env, { sharedState: new RedisPolicyState({ client }) })
   */
  readonly registry?: PolicyRegistry;
  /** Named policies a client may refer to with its `policy` option. @default {} */
  readonly policies?: Readonly<Record<string, NamedPolicyOptions>>;
  /** Module defaults. @default retry maxAttempts 3, timeout 30 s total / 10 s attempt, breaker defaults */
  readonly defaults?: HttpClientDefaults;
  /** Telemetry settings (`ResilienceModule.forRoot({ telemetry })`). @default enabled, tracer and meter `nest-resilience` */
  readonly telemetry?: {
    /** Record spans and metrics. */
    readonly enabled?: boolean;
    /** Instrumentation scope of the spans. */
    readonly tracerName?: string;
    /** Instrumentation scope of the metrics. */
    readonly meterName?: string;
  };
  /** Called once per call, when it ends (the structured log event). */
  readonly onCall?: (record: HttpCallRecord, error: UpstreamError | undefined) => void;
  /**
   * Runtime chaos rules (`ResilienceModule.forRoot({ chaos: { enabled: true } })`): the client's
   * pipelines get the injection stage, and rules naming `httpClient` (and `origin`) apply to its calls.
   * @default none (no injection stage)
   */
  readonly chaos?: ChaosControl | null;
}

/**
 * The client's base URL, parsed once.
 * @throws ResilienceConfigError unless it is an absolute http: or https: URL.
 * @internal
 */
export function parseBaseUrl(name: string, baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ResilienceConfigError(`The HTTP client "${name}" has baseUrl ${JSON.stringify(baseUrl)}, which is not an absolute URL. Give one such as "https://api.example.com/v1".`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ResilienceConfigError(`The HTTP client "${name}" has baseUrl ${JSON.stringify(baseUrl)}. Use an http: or https: URL.`);
  }
  return url;
}

/**
 * Refuses options that can never work (rate limit, hedging, connections, key mode).
 * @throws ResilienceConfigError naming the option and the fix.
 * @internal
 */
export function validateClientOptions(name: string, options: HttpClientOptions): void {
  const where = `The HTTP client "${name}"`;
  const { rateLimit, hedging, connections } = options;
  if (rateLimit) resolveRateLimit(rateLimit, where);
  if (hedging) {
    if (!(hedging.delay > 0) || !Number.isFinite(hedging.delay)) {
      throw new ResilienceConfigError(`${where} has hedging.delay ${String(hedging.delay)}. Give a delay in ms > 0, or hedging: false.`);
    }
    if (hedging.maxHedges !== undefined && !(Number.isInteger(hedging.maxHedges) && hedging.maxHedges >= 1 && hedging.maxHedges <= 3)) {
      throw new ResilienceConfigError(`${where} has hedging.maxHedges ${String(hedging.maxHedges)}. Give 1, 2 or 3.`);
    }
  }
  if (connections !== undefined && !(Number.isInteger(connections) && connections >= 1)) {
    throw new ResilienceConfigError(`${where} has connections ${String(connections)}. Give a whole number >= 1.`);
  }
  if (options.idempotencyKeys !== undefined && options.idempotencyKeys !== 'auto' && options.idempotencyKeys !== 'explicit') {
    throw new ResilienceConfigError(`${where} has idempotencyKeys ${JSON.stringify(options.idempotencyKeys)}. Use 'auto' or 'explicit'.`);
  }
}

/** `@Timeout(ms)`'s rule for a named policy's number: an attempt timeout when retries are on. */
function timeoutOf(value: number | TimeoutOptions | undefined, retries: boolean): TimeoutOptions {
  if (value === undefined) return {};
  if (typeof value === 'number') return retries ? { attempt: value } : { total: value };
  return value;
}

/**
 * The pipeline spec of a client: its own options over the named policy over the module defaults.
 * @internal
 */
export function resolveClientSpec(name: string, options: HttpClientOptions, dependencies: HttpClientDependencies): Omit<PipelineSpec, 'key'> {
  const defaults = dependencies.defaults ?? {};
  let named: NamedPolicyOptions = {};
  if (options.policy !== undefined) {
    const found = dependencies.policies?.[options.policy];
    if (found === undefined) {
      const known = Object.keys(dependencies.policies ?? {});
      throw new ResilienceConfigError(
        `The HTTP client "${name}" uses the named policy "${options.policy}", which does not exist. ${known.length === 0 ? 'Add it to ResilienceModule.forRoot({ policies }).' : `Known policies: ${known.map((k) => `"${k}"`).join(', ')}.`}`,
      );
    }
    named = found;
  }
  const retry: RetryOptions | undefined =
    options.retry === false
      ? undefined
      : { maxAttempts: 3, ...defaults.retry, ...withoutNestFields(named.retry), ...options.retry };
  const namedTimeout = timeoutOf(named.timeout, retry !== undefined);
  const total = options.timeout?.total ?? namedTimeout.total ?? defaults.timeout?.total ?? DEFAULT_TOTAL_TIMEOUT_MS;
  const attempt = options.timeout?.attempt ?? namedTimeout.attempt ?? Math.min(defaults.timeout?.attempt ?? DEFAULT_ATTEMPT_TIMEOUT_MS, total);
  const circuitBreaker: CircuitBreakerOptions | undefined =
    options.circuitBreaker === false
      ? undefined
      : { ...defaults.circuitBreaker, ...withoutNestFields(named.circuitBreaker), ...options.circuitBreaker };
  const bulkheadParts = [withoutNestFields(named.bulkhead), options.bulkhead || undefined].filter((part) => part !== undefined);
  const bulkhead: BulkheadOptions | undefined = options.bulkhead === false || bulkheadParts.length === 0 ? undefined : Object.assign({}, ...bulkheadParts);
  return {
    timeout: { total, attempt },
    ...(retry === undefined ? {} : { retry }),
    ...(circuitBreaker === undefined ? {} : { circuitBreaker }),
    ...(bulkhead === undefined ? {} : { bulkhead }),
  };
}

/** `spec` with its breaker and retry budget kept in-process. @internal */
export function withoutSharedState(spec: Omit<PipelineSpec, 'key'>): Omit<PipelineSpec, 'key'> {
  const { circuitBreaker, retry } = spec;
  return {
    ...spec,
    ...(circuitBreaker === undefined ? {} : { circuitBreaker: { ...circuitBreaker, shared: false } }),
    ...(retry?.budget ? { retry: { ...retry, budget: { ...retry.budget, shared: false } } } : {}),
  };
}

/** A decorator option object without the fields only the Nest decorators understand. */
function withoutNestFields<T extends object>(value: T | undefined): Omit<T, 'policy' | 'key' | 'rejectStatus' | 'allowNonIdempotentMethod'> | undefined {
  if (value === undefined) return undefined;
  const { policy: _policy, key: _key, rejectStatus: _status, allowNonIdempotentMethod: _allow, ...rest } = value as Record<string, unknown>;
  return rest as Omit<T, 'policy' | 'key' | 'rejectStatus' | 'allowNonIdempotentMethod'>;
}
