import { BulkheadPolicy } from './bulkhead.policy.js';
import { CircuitBreakerPolicy, type CircuitBreakerSnapshot } from './circuit-breaker.policy.js';
import type { BulkheadOptions, CircuitBreakerOptions, RetryBudgetOptions } from './options.js';
import type { PolicyEnvironment } from './policy.js';
import { LocalRateLimiter, resolveRateLimit, type RateLimiter, type RateLimitOptions } from './rate-limiter.js';
import { RetryBudget } from './retry-budget.js';
import { requireSharedState, SharedRetryBudget, SharedStateGuard, type RetryPermits, type SharedPolicyState } from './shared-policy-state.js';
import { SharedRateLimiter } from './shared-rate-limiter.js';
import { resolveRetryBudgetOptions } from './validate.js';

/**
 * Options of a {@link PolicyRegistry}.
 * @publicApi
 */
export interface PolicyRegistryOptions {
  /** Most keys kept per kind (breakers, bulkheads, budgets); the least recently used go first. @default 1000 */
  readonly maxKeys?: number;
  /**
   * Backend of the policies that ask for shared state (`circuitBreaker.shared`,
   * `retry.budget.shared`). @default undefined (asking for shared state is an error)
   */
  readonly sharedState?: SharedPolicyState;
}

/** A least-recently-used map whose eviction can skip entries that must survive. */
class LruMap<V> {
  private readonly entries = new Map<string, V>();

  constructor(
    private readonly maxKeys: number,
    private readonly evictable: (value: V) => boolean = () => true,
    private readonly evicted: (value: V) => void = () => undefined,
  ) {}

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  getOrCreate(key: string, create: () => V): V {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, existing);
      return existing;
    }
    const created = create();
    this.entries.set(key, created);
    if (this.entries.size > this.maxKeys) this.evictOne(key);
    return created;
  }

  values(): IterableIterator<V> {
    return this.entries.values();
  }

  private evictOne(keep: string): void {
    let fallback: string | undefined;
    for (const [key, value] of this.entries) {
      if (key === keep) continue;
      if (this.evictable(value)) {
        this.entries.delete(key);
        this.evicted(value);
        return;
      }
      fallback ??= key;
    }
    if (fallback !== undefined) {
      const value = this.entries.get(fallback)!;
      this.entries.delete(fallback);
      this.evicted(value);
    }
  }
}

/**
 * Holds the state that must be shared by every caller of a policy key: circuit breakers, bulkheads
 * and retry budgets. Keys are the named policy or `Class.method`, so request-scoped providers and
 * several pipelines with one key share one breaker. The first options given for a key win; later
 * calls with other options get the existing instance unchanged. Each kind keeps at most `maxKeys`
 * keys, evicting the least recently used; a breaker that is not closed is only evicted when every
 * kept breaker is not closed, and a busy bulkhead only when all are busy.
 * @publicApi
 */
export class PolicyRegistry {
  private readonly breakers: LruMap<CircuitBreakerPolicy>;
  private readonly bulkheads: LruMap<BulkheadPolicy>;
  private readonly budgets: LruMap<RetryBudget>;
  private readonly sharedBudgets: LruMap<SharedRetryBudget>;
  private readonly rateLimiters: LruMap<RateLimiter>;
  private readonly shared: SharedStateGuard | undefined;

  constructor(
    private readonly env: PolicyEnvironment,
    options: PolicyRegistryOptions = {},
  ) {
    const maxKeys = options.maxKeys ?? 1000;
    this.breakers = new LruMap(
      maxKeys,
      (breaker) => breaker.state === 'closed',
      (breaker) => breaker.release(),
    );
    this.bulkheads = new LruMap(maxKeys, (bulkhead) => bulkhead.active === 0 && bulkhead.queued === 0);
    this.budgets = new LruMap(maxKeys);
    this.sharedBudgets = new LruMap(maxKeys);
    // a limiter still paused by a Retry-After is kept while any other can go
    this.rateLimiters = new LruMap(maxKeys, (limiter) => limiter.pausedUntil === undefined);
    this.shared = options.sharedState === undefined ? undefined : new SharedStateGuard(options.sharedState, env);
  }

  /** The shared state backend, when one is configured. */
  get sharedState(): SharedPolicyState | undefined {
    return this.shared?.backend;
  }

  /**
   * The breaker of `key`, created with `options` on first use.
   * @throws ResilienceConfigError when `options.shared` is set and no shared state backend is configured.
   */
  circuitBreaker(key: string, options: CircuitBreakerOptions = {}): CircuitBreakerPolicy {
    return this.breakers.getOrCreate(key, () => {
      requireSharedState({ circuitBreaker: options }, `The circuit breaker "${key}"`, this.shared?.backend);
      return new CircuitBreakerPolicy(key, options, this.env, this.shared);
    });
  }

  /** The bulkhead of `key`, created with `options` on first use. */
  bulkhead(key: string, options: BulkheadOptions = {}): BulkheadPolicy {
    return this.bulkheads.getOrCreate(key, () => new BulkheadPolicy(key, options, this.env));
  }

  /** The retry budget of `key`, created with `options` on first use. */
  retryBudget(key: string, options: RetryBudgetOptions = {}): RetryBudget {
    return this.budgets.getOrCreate(key, () => new RetryBudget(resolveRetryBudgetOptions(options), this.env.clock));
  }

  /**
   * What grants the retries of `key`: its in-process budget, or with `options.shared` a
   * {@link SharedRetryBudget} over it (the in-process budget is the fallback during an outage).
   * @throws ResilienceConfigError when `options.shared` is set and no shared state backend is configured.
   */
  retryPermits(key: string, options: RetryBudgetOptions = {}): RetryPermits {
    if (options.shared !== true) return this.retryBudget(key, options);
    const shared = this.shared;
    requireSharedState({ retry: { budget: options } }, `The retry budget "${key}"`, shared?.backend);
    return this.sharedBudgets.getOrCreate(key, () => {
      const window = resolveRetryBudgetOptions(options);
      const { shared: _shared, ...numbers } = window;
      return new SharedRetryBudget(this.retryBudget(key, options), shared!.backend.retryBudget(key, numbers), shared!, key);
    });
  }

  /**
   * The rate limiter of `key`, created with `options` on first use: an in-process token bucket, or
   * with `options.shared` one bucket for every instance on the shared state backend (its
   * `fallback` bucket decides here while the backend is down or slow).
   * @throws ResilienceConfigError when the options can never work, or `options.shared` is set and no
   * shared state backend with a `rateLimiter()` is configured.
   */
  rateLimiter(key: string, options: RateLimitOptions): RateLimiter {
    return this.rateLimiters.getOrCreate(key, () => {
      const where = `The rate limit "${key}"`;
      const { rate, fallback } = resolveRateLimit(options, where);
      requireSharedState({ rateLimit: options }, where, this.shared?.backend);
      const local = new LocalRateLimiter(this.env.clock, fallback);
      if (options.shared !== true) return local;
      const shared = this.shared!;
      return new SharedRateLimiter(key, local, shared.backend.rateLimiter!(key, rate), shared);
    });
  }

  /** The rate limiter of `key` if one exists (does not create one or refresh its recency). */
  findRateLimiter(key: string): RateLimiter | undefined {
    return this.rateLimiters.get(key);
  }

  /** Stops the shared state's background work (recovery pings) and releases every shared breaker. */
  dispose(): void {
    this.shared?.dispose();
    for (const breaker of this.breakers.values()) breaker.release();
  }

  /** Nest calls it at shutdown (the registry is a provider of `ResilienceModule`): {@link dispose}. */
  onApplicationShutdown(): void {
    this.dispose();
  }

  /** Snapshots of every kept breaker (for health checks and metrics). */
  circuitBreakers(): CircuitBreakerSnapshot[] {
    return [...this.breakers.values()].map((breaker) => breaker.snapshot());
  }

  /** The breaker of `key` if one exists (does not create one or refresh its recency). */
  findCircuitBreaker(key: string): CircuitBreakerPolicy | undefined {
    return this.breakers.get(key);
  }
}
