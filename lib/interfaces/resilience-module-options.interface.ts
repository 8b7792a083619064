import type { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';
import type { Type } from '@nestjs/common';
import type { Clock } from '../core/clock.js';
import type { ChaosOptions, ResolvedChaosOptions } from '../core/fault-injection.js';
import type {
  BulkheadOptions,
  CircuitBreakerOptions,
  FallbackOptions,
  RetryOptions,
  TimeoutOptions,
} from '../core/options.js';
import type { Random } from '../core/random.js';
import type { SharedPolicyState } from '../core/shared-policy-state.js';
import type { RateLimitOptions } from '../core/rate-limiter.js';
import type { LastGoodOptions } from '../core/last-good.js';
import type { IdempotencyModuleOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { ResilienceObservabilityOptions } from '../observability/observability-options.interface.js';

/**
 * HTTP status answered when a deadline or attempt timeout ends a request.
 * @publicApi
 */
export type TimeoutStatus = 503 | 504 | 408;

/**
 * What a circuit breaker `key` function is given to compute the key of one call.
 * @publicApi
 */
export interface PolicyKeyContext {
  /** Name of the class that declares the route or method. */
  readonly className: string;
  /** Name of the route handler or provider method. */
  readonly methodName: string;
  /** Arguments of the call (for routes: the Nest handler arguments `[req, res, next]`). */
  readonly args: readonly unknown[];
  /** The HTTP request, for routes. */
  readonly request?: unknown;
}

/**
 * Options of `@Retryable()`: the core {@link RetryOptions} plus the HTTP opt-in.
 * @publicApi
 */
export interface RetryableOptions extends RetryOptions {
  /**
   * Allows `@Retryable()` on a POST or PATCH route that is not `@Idempotent()`. Only set it when
   * running the handler twice is harmless.
   * @default false
   */
  readonly allowNonIdempotentMethod?: boolean;
  /** Named policy (from `forRoot({ policies })`) to start from. */
  readonly policy?: string;
}

/**
 * Options of `@Timeout()`, in ms. Omitted fields fall back to the class, the named policy, the
 * module options, then the defaults (total 30 s, attempt 10 s, attempt capped at total).
 * @publicApi
 */
export type TimeoutDecoratorOptions = TimeoutOptions;

/**
 * Options of `@CircuitBreaker()`: the core {@link CircuitBreakerOptions} plus the state key.
 * @publicApi
 */
export interface CircuitBreakerDecoratorOptions extends CircuitBreakerOptions {
  /**
   * Key of the breaker state (and of the bulkhead and retry budget of the same call): a fixed
   * name shared by several routes, or a function of the call (per downstream host or tenant).
   * Distinct keys are capped by `maxPolicyKeys` (least recently used are dropped).
   * @default the named policy, else `Class.method`
   */
  readonly key?: string | ((context: PolicyKeyContext) => string);
  /** Named policy (from `forRoot({ policies })`) to start from. */
  readonly policy?: string;
}

/**
 * Options of `@Bulkhead()`: the core {@link BulkheadOptions} plus the HTTP status of a rejection.
 * @publicApi
 */
export interface BulkheadDecoratorOptions extends BulkheadOptions {
  /** HTTP status of a rejected request. @default 503 */
  readonly rejectStatus?: 503 | 429;
  /** Named policy (from `forRoot({ policies })`) to start from. */
  readonly policy?: string;
}

/**
 * A DI provider that produces fallback results: `@Fallback(MyFallback)` resolves it through the
 * module's injector and calls `fallback(error, ...args)` with the failed call's arguments.
 * @publicApi
 */
export interface FallbackProvider<T = unknown> {
  /** The degraded result for `error`; `args` are the failed call's arguments. */
  fallback(error: unknown, ...args: any[]): T | Promise<T>;
}

/**
 * A function that produces the fallback result from the error and the call's arguments.
 * @publicApi
 */
export type FallbackFactory<T = unknown> = (error: unknown, ...args: any[]) => T | Promise<T>;

/**
 * Where a fallback result comes from: a fixed value, a factory function, or a provider class.
 */
export type FallbackSource =
  | {
      /** A fixed value. */
      readonly kind: 'value';
      /** The value answered. */
      readonly value: unknown;
    }
  | {
      /** No source of its own (`@Fallback({ lastGood })` alone): the last good result or the error. */
      readonly kind: 'none';
    }
  | {
      /** A factory. */
      readonly kind: 'factory';
      /** Called with the error and the call's arguments. */
      readonly factory: FallbackFactory;
    }
  | {
      /** A DI provider. */
      readonly kind: 'provider';
      /** The provider class, resolved through the injector. */
      readonly provider: Type<FallbackProvider>;
    };

/**
 * Options of `@Fallback()` besides its source.
 * @publicApi
 */
export interface FallbackDecoratorOptions {
  /**
   * Which errors trigger the fallback: causes by name, error classes, or a predicate.
   * @default ['timeout', 'circuit_open', 'bulkhead_rejected', 'retries_exhausted', 'transient']
   */
  readonly on?: FallbackOptions['on'];
  /**
   * Serve the last good result of the same call (same `key`) while the breaker is open or the call
   * fails transiently (timeout, network error, 408/429/5xx, retries exhausted on those), never older
   * than `ttl`; only then the fallback's own source (if any). Results are kept per policy key, at
   * most `maxEntries`. A route answers it with the header `Resilience-Stale: <age in seconds>`.
   * Refused at start-up on `@Idempotent()` routes (a replayed answer must be the one produced).
   * @example
   * @Fallback({ lastGood: { ttl: 60_000, key: (city: string) => city } })
   */
  readonly lastGood?: LastGoodOptions & {
    /** The call's key from its arguments. @default the arguments as JSON (one entry when they are not plain data) */
    readonly key?: (...args: any[]) => string;
  };
}

/**
 * The metadata `@Fallback()` records.
 */
export interface FallbackMetadata extends FallbackDecoratorOptions {
  /** Where the fallback result comes from. */
  readonly source: FallbackSource;
}

/**
 * A fallback in a named policy: exactly one of `value`, `factory` or `provider`, plus `on`.
 * @example
 * fallback: { factory: (error) => ({ status: 'degraded' }), on: ['timeout', 'circuit_open'] }
 * @publicApi
 */
export type NamedFallbackOptions = FallbackDecoratorOptions &
  (
    | {
        /** A fixed value. */
        readonly value: unknown;
        /** Not with `value`. */
        readonly factory?: never;
        /** Not with `value`. */
        readonly provider?: never;
      }
    | {
        /** A factory `(error, ...args)`. */
        readonly factory: FallbackFactory;
        /** Not with `factory`. */
        readonly value?: never;
        /** Not with `factory`. */
        readonly provider?: never;
      }
    | {
        /** A provider class implementing {@link FallbackProvider}. */
        readonly provider: Type<FallbackProvider>;
        /** Not with `provider`. */
        readonly value?: never;
        /** Not with `provider`. */
        readonly factory?: never;
      }
  );

/**
 * Options of `@RateLimit()`.
 * @publicApi
 */
export interface RateLimitDecoratorOptions extends RateLimitOptions {
  /** Start from this named policy's `rateLimit` (`@RateLimit('llm')`); these options win. */
  readonly policy?: string;
}

/**
 * One named policy of `forRoot({ policies })`, selected with `@UsePolicy('name')` or
 * `@Retryable('name')`. Route and class decorators override its fields.
 * @publicApi
 */
export interface NamedPolicyOptions {
  /** Retry options; presence turns retries on for routes using the policy. */
  readonly retry?: RetryableOptions;
  /** Timeouts; a number follows the `@Timeout(ms)` rule. */
  readonly timeout?: number | TimeoutOptions;
  /** Circuit breaker options; presence turns the breaker on. */
  readonly circuitBreaker?: CircuitBreakerDecoratorOptions;
  /** Bulkhead options; presence turns the bulkhead on. */
  readonly bulkhead?: BulkheadDecoratorOptions;
  /** Outgoing rate limit; presence turns it on (`@RateLimit()`). */
  readonly rateLimit?: RateLimitDecoratorOptions;
  /** Fallback value, factory or provider class; presence turns the fallback on. */
  readonly fallback?: NamedFallbackOptions;
}

/**
 * Module-wide timeout settings.
 * @publicApi
 */
export interface ModuleTimeoutOptions extends TimeoutOptions {
  /** Default deadline of a decorated route or method, in ms. @default 30_000 */
  readonly total?: number;
  /** Default attempt timeout of a decorated route or method, in ms (capped at `total`). @default 10_000 */
  readonly attempt?: number;
  /** HTTP status answered at a deadline or attempt timeout. @default 503 */
  readonly status?: TimeoutStatus;
}

/**
 * Options of `ResilienceModule.forRoot()` / `forRootAsync()`.
 * @publicApi
 */
export interface ResilienceModuleOptions extends ResilienceObservabilityOptions {
  /** Kill switch: `false` runs every decorated route and method as if undecorated. @default true */
  readonly enabled?: boolean;
  /** Module defaults for `@Retryable()`. @default { maxAttempts: 3, exponential 100 ms ×2 full jitter, maxDelay 5000, budget 20 % / 10 s, floor 10/s } */
  readonly retry?: RetryOptions;
  /** Module timeouts of decorated routes and methods, and the HTTP status of a timeout. @default { total: 30_000, attempt: 10_000, status: 503 } */
  readonly timeout?: ModuleTimeoutOptions;
  /** Module defaults for `@CircuitBreaker()`. @default time window 30 s, min throughput 100, failure ratio 0.1, break 5 s, 1 probe */
  readonly circuitBreaker?: CircuitBreakerOptions;
  /** Module defaults for `@Bulkhead()`. @default { maxConcurrent: 1000, maxQueue: 0 } */
  readonly bulkhead?: BulkheadDecoratorOptions;
  /** Named policies, one per dependency, selected with `@UsePolicy('name')`. @default {} */
  readonly policies?: Readonly<Record<string, NamedPolicyOptions>>;
  /** Idempotency settings (`@Idempotent()` routes). @default in-memory store, `Idempotency-Key` header */
  readonly idempotency?: IdempotencyModuleOptions;
  /** Source of time of every policy. @default systemClock */
  readonly clock?: Clock;
  /** Source of randomness (jitter). @default systemRandom */
  readonly random?: Random;
  /** Most policy keys kept (breaker, bulkhead, budget state); least recently used are dropped. @default 1000 */
  readonly maxPolicyKeys?: number;
  /**
   * How errors become HTTP answers: a subclass of `ResilienceErrorMapper` (constructed with the
   * resolved options) or an instance of one.
   * @default ResilienceErrorMapper
   * @example
   * ResilienceModule.forRoot({ errorMapper: MyErrorMapper })
   */
  readonly errorMapper?: ErrorMapperOption;
  /** Base of the `type` URI of problem+json bodies. @default 'https://nest-resilience.dev/problems/' */
  readonly problemTypeBase?: string;
  /**
   * Backend that shares breaker and retry budget state between the instances of the application.
   * Only policies that opt in use it (`circuitBreaker: { shared: true }`,
   * `retry: { budget: { shared: true } }`); everything else stays in-process. While it is
   * unreachable (or slower than its `maxWait`), shared policies use in-process state.
   * @default undefined (asking for shared state is a start-up error)
   * @example
   * ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client: redis }) }) // redis: your app's client, with an 'error' listener
   */
  readonly sharedState?: SharedPolicyState;
  /**
   * Runtime chaos (fault injection): rules that inject an exception, latency or an HTTP outcome into
   * a policy, route, method or HTTP client at a rate, switched at runtime through
   * `ResilienceService.chaos()` and the resilience console. Off unless `enabled`; refused at start-up
   * with `NODE_ENV=production` unless `allowInProduction`. Without it, no pipeline has an injection stage.
   * @default undefined (off)
   * @example
   * ResilienceModule.forRoot({ chaos: { enabled: process.env.CHAOS === 'on', seed: 42 } })
   */
  readonly chaos?: ChaosOptions;
  /**
   * A source of new options applied without a restart, each value as with
   * `ResilienceService.reload()` (an RxJS Observable, or anything with such a `subscribe`): a
   * configuration watcher, a feature-flag stream. Subscribed once the application has started,
   * unsubscribed at shutdown. An invalid value is refused (`options_reload_refused`, logged) and the
   * options in force stay.
   * @default undefined
   * @example
   * ResilienceModule.forRootAsync({ inject: [ConfigWatcher], useFactory: (watcher: ConfigWatcher) => ({ ...watcher.current(), reloads: watcher.changes$ }) })
   */
  readonly reloads?: OptionsSource;
}

/**
 * Something that pushes new options: an RxJS `Observable<ResilienceModuleOptions>` fits.
 * @publicApi
 */
export interface OptionsSource {
  /** Calls `next` with each new value; the returned subscription is ended at shutdown. */
  subscribe(next: (options: ReloadableResilienceOptions) => void): {
    /** Stops the values. */
    unsubscribe(): void;
  };
}

/**
 * The options `ResilienceService.reload()` accepts: every module option that decides how calls run.
 * Infrastructure chosen at start-up (clock, randomness, shared state, idempotency store, error
 * mapper, key limit, telemetry, logging, the source of reloads) needs a restart.
 * @publicApi
 */
export type ReloadableResilienceOptions = Pick<ResilienceModuleOptions, 'enabled' | 'retry' | 'timeout' | 'circuitBreaker' | 'bulkhead' | 'policies' | 'problemTypeBase'>;

/**
 * The module options after defaults were merged and validated (inject with
 * `@Inject(RESOLVED_RESILIENCE_OPTIONS)`).
 * @publicApi
 */
export interface ResolvedResilienceOptions extends ResilienceObservabilityOptions {
  /** `false` runs every decorated route and method as if undecorated. */
  readonly enabled: boolean;
  /** Module-wide retry defaults. */
  readonly retry: RetryOptions;
  /** Module-wide timeouts, ms, and the status answered at a timeout. */
  readonly timeout: {
    /** Deadline of a decorated route or method. */
    readonly total: number;
    /** Per-attempt timeout. */
    readonly attempt: number;
    /** HTTP status answered at a timeout. */
    readonly status: TimeoutStatus;
  };
  /** Module-wide circuit breaker defaults. */
  readonly circuitBreaker: CircuitBreakerOptions;
  /** Module-wide bulkhead defaults. */
  readonly bulkhead: BulkheadDecoratorOptions;
  /** Named policies, by name. */
  readonly policies: Readonly<Record<string, NamedPolicyOptions>>;
  /** Idempotency options, or `undefined` for the defaults (in-memory store). */
  readonly idempotency: IdempotencyModuleOptions | undefined;
  /** Time source of every policy. */
  readonly clock: Clock;
  /** Randomness source of jitter. */
  readonly random: Random;
  /** Most breaker, bulkhead and budget keys kept. */
  readonly maxPolicyKeys: number;
  /** The custom error mapper, if any. */
  readonly errorMapper: ErrorMapperOption | undefined;
  /** Base URI of problem+json `type`. */
  readonly problemTypeBase: string;
  /** Backend of shared breakers and budgets, if any. */
  readonly sharedState: SharedPolicyState | undefined;
  /** Runtime chaos, when enabled. */
  readonly chaos: ResolvedChaosOptions | undefined;
}

/**
 * A custom error mapper: a `ResilienceErrorMapper` subclass or an instance of one.
 * @publicApi
 */
export type ErrorMapperOption = ResilienceErrorMapper | (new (options: ResolvedResilienceOptions) => ResilienceErrorMapper);

/**
 * Implemented by a class given to `forRootAsync({ useClass })` / `useExisting`.
 * @publicApi
 */
export interface ResilienceOptionsFactory {
  /** The module options; called once, at start-up. */
  createResilienceOptions(): ResilienceModuleOptions | Promise<ResilienceModuleOptions>;
}
