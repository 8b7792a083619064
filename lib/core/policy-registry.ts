import { BulkheadPolicy, type BulkheadSnapshot } from './bulkhead.policy.js';
import { CircuitBreakerPolicy, type CircuitBreakerSnapshot } from './circuit-breaker.policy.js';
import type { BulkheadOptions, CircuitBreakerOptions, RetryBudgetOptions } from './options.js';
import type { PolicyEnvironment } from './policy.js';
import { ResilienceConfigError } from './errors.js';
import { LastGoodCache, type LastGoodOptions, type LastGoodStore } from './last-good.js';
import { LocalRateLimiter, resolveRateLimit, type RateLimiter, type RateLimitOptions } from './rate-limiter.js';
import { RetryBudget, type RetryBudgetSnapshot } from './retry-budget.js';
import { requireSharedState, SharedRetryBudget, SharedStateGuard, type RetryPermits, type SharedPolicyState } from './shared-policy-state.js';
import { SharedLastGoodCache } from './shared-last-good.js';
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

  /** Replaces the value of a kept key (keeps its recency). */
  replace(key: string, value: V): void {
    if (this.entries.has(key)) this.entries.set(key, value);
  }

  values(): IterableIterator<V> {
    return this.entries.values();
  }

  keyed(): IterableIterator<[string, V]> {
    return this.entries.entries();
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
  private readonly bulkheadsByKey: LruMap<BulkheadPolicy>;
  private readonly budgets: LruMap<RetryBudget>;
  private readonly sharedBudgets: LruMap<SharedRetryBudget>;
  private readonly rateLimiters: LruMap<{ readonly limiter: RateLimiter; readonly options: RateLimitOptions }>;
  private readonly shared: SharedStateGuard | undefined;
  /** Bumped by {@link reconfigure}: a policy configured under an older generation takes the options of its next caller. */
  private generation = 0;
  private readonly configuredAt = new WeakMap<object, number>();
  private resets: string[] = [];

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
    this.bulkheadsByKey = new LruMap(maxKeys, (bulkhead) => bulkhead.active === 0 && bulkhead.queued === 0);
    this.budgets = new LruMap(maxKeys);
    this.sharedBudgets = new LruMap(maxKeys);
    // a limiter still paused by a Retry-After is kept while any other can go
    this.rateLimiters = new LruMap(maxKeys, (kept) => kept.limiter.pausedUntil === undefined);
    this.shared = options.sharedState === undefined ? undefined : new SharedStateGuard(options.sharedState, env);
  }

  /** The shared state backend, when one is configured. */
  get sharedState(): SharedPolicyState | undefined {
    return this.shared?.backend;
  }

  /** Whether the shared state backend decides now (`false` during an outage); `undefined` without one. */
  get sharedStateAvailable(): boolean | undefined {
    return this.shared?.available;
  }

  /**
   * The breaker of `key`, created with `options` on first use.
   * @throws ResilienceConfigError when `options.shared` is set and no shared state backend is configured.
   */
  circuitBreaker(key: string, options: CircuitBreakerOptions = {}): CircuitBreakerPolicy {
    const create = () => {
      requireSharedState({ circuitBreaker: options }, `The circuit breaker "${key}"`, this.shared?.backend);
      return this.configured(new CircuitBreakerPolicy(key, options, this.env, this.shared));
    };
    const breaker = this.breakers.getOrCreate(key, create);
    if (!this.stale(breaker)) return breaker;
    if ((options.shared === true) !== (breaker.options.shared === true)) {
      // the link to the shared state is made at construction: a new breaker, state and all
      breaker.release();
      const replaced = create();
      this.breakers.replace(key, replaced);
      this.resets.push(`circuit breaker "${key}": state (shared changed)`);
      return replaced;
    }
    if (breaker.reconfigure(options).length > 0) this.resets.push(`circuit breaker "${key}": window (strategy or slowCall changed)`);
    return breaker;
  }

  /** The bulkhead of `key`, created with `options` on first use. */
  bulkhead(key: string, options: BulkheadOptions = {}): BulkheadPolicy {
    const bulkhead = this.bulkheadsByKey.getOrCreate(key, () => this.configured(new BulkheadPolicy(key, options, this.env)));
    if (this.stale(bulkhead)) bulkhead.reconfigure(options);
    return bulkhead;
  }

  /** The retry budget of `key`, created with `options` on first use. */
  retryBudget(key: string, options: RetryBudgetOptions = {}): RetryBudget {
    const resolved = resolveRetryBudgetOptions(options);
    const create = () => this.configured(new RetryBudget(resolved, this.env.clock));
    const budget = this.budgets.getOrCreate(key, create);
    if (!this.stale(budget)) return budget;
    if (budget.settings.window === resolved.window) {
      budget.reconfigure(resolved);
      return budget;
    }
    const replaced = create();
    this.budgets.replace(key, replaced);
    this.resets.push(`retry budget "${key}": counters (window changed)`);
    return replaced;
  }

  /**
   * Starts applying reloaded options (`ResilienceService.reload`): from now on, the next caller of
   * each kept key hands it its options, which it applies keeping its state (open breaker, calls in
   * a bulkhead, budget counters), except where a changed option cannot keep it: a breaker's
   * `strategy` or `slowCall` (its window restarts), `shared` (a new breaker), a budget's `window`
   * (its counters restart), a rate limit's rate (a new bucket). Those are listed by {@link takeResets}.
   */
  reconfigure(): void {
    this.generation++;
    this.resets = [];
  }

  /** What the policies configured since {@link reconfigure} could not keep, one sentence each. */
  takeResets(): string[] {
    const resets = this.resets;
    this.resets = [];
    return resets;
  }

  // Until the first reload nothing is recorded per policy: a flood of keys costs what it did before
  // (a WeakMap's table keeps its size after its keys were collected).
  private configured<T extends object>(policy: T): T {
    if (this.generation > 0) this.configuredAt.set(policy, this.generation);
    return policy;
  }

  /** Whether `policy` was configured before the last {@link reconfigure} (and marks it configured now). */
  private stale(policy: object): boolean {
    if (this.generation === 0 || (this.configuredAt.get(policy) ?? 0) >= this.generation) return false;
    this.configuredAt.set(policy, this.generation);
    return true;
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
    const create = () => {
      const window = resolveRetryBudgetOptions(options);
      const { shared: _shared, ...numbers } = window;
      return this.configured(new SharedRetryBudget(this.retryBudget(key, options), shared!.backend.retryBudget(key, numbers), shared!, key));
    };
    const permits = this.sharedBudgets.getOrCreate(key, create);
    if (!this.stale(permits)) return permits;
    // the backend's handle carries the window and ratio: a new one over the (reconfigured) local budget
    const replaced = create();
    this.sharedBudgets.replace(key, replaced);
    return replaced;
  }

  /**
   * The rate limiter of `key`, created with `options` on first use: an in-process token bucket, or
   * with `options.shared` one bucket for every instance on the shared state backend (its
   * `fallback` bucket decides here while the backend is down or slow).
   * @throws ResilienceConfigError when the options can never work, or `options.shared` is set and no
   * shared state backend with a `rateLimiter()` is configured.
   */
  rateLimiter(key: string, options: RateLimitOptions): RateLimiter {
    const create = () => {
      const where = `The rate limit "${key}"`;
      const { rate, fallback } = resolveRateLimit(options, where);
      requireSharedState({ rateLimit: options }, where, this.shared?.backend);
      const local = new LocalRateLimiter(this.env.clock, fallback);
      if (options.shared !== true) return this.configured({ limiter: local as RateLimiter, options });
      const shared = this.shared!;
      return this.configured({ limiter: new SharedRateLimiter(key, local, shared.backend.rateLimiter!(key, rate), shared) as RateLimiter, options });
    };
    const kept = this.rateLimiters.getOrCreate(key, create);
    if (!this.stale(kept) || sameRate(kept.options, options)) return kept.limiter;
    const replaced = create();
    const pausedUntil = kept.limiter.pausedUntil;
    if (pausedUntil !== undefined) replaced.limiter.halt(pausedUntil);
    this.rateLimiters.replace(key, replaced);
    this.resets.push(`rate limit "${key}": in-process bucket (rate changed; a Retry-After pause is kept)`);
    return replaced.limiter;
  }

  /**
   * A new last-good cache for the results of `key` (`@Fallback({ lastGood })`): in-process, or with
   * `options.shared` one for every instance on the shared state backend (this instance's own
   * results answer while the backend is down or slow). The caller keeps it.
   * @throws ResilienceConfigError when `options.shared` is set and no shared state backend with a
   * `lastGood()` is configured (the message names the fix and `where`).
   */
  lastGoodCache(key: string, options: Required<LastGoodOptions>, where: string): LastGoodStore {
    const local = new LastGoodCache(this.env.clock, options);
    if (!options.shared) return local;
    const backend = this.shared?.backend;
    if (backend === undefined || typeof backend.lastGood !== 'function') {
      throw new ResilienceConfigError(
        `${where} sets lastGood.shared: true, but ${backend === undefined ? 'no shared state backend is configured' : 'the shared state backend has no lastGood()'}. ` +
          `Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove lastGood.shared.`,
      );
    }
    return new SharedLastGoodCache(key, local, backend.lastGood(key, { ttl: options.ttl, maxEntries: options.maxEntries }), this.shared!);
  }

  /** The rate limiter of `key` if one exists (does not create one or refresh its recency). */
  findRateLimiter(key: string): RateLimiter | undefined {
    return this.rateLimiters.get(key)?.limiter;
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

  /** Snapshots of every kept bulkhead (does not refresh their recency). */
  bulkheads(): BulkheadSnapshot[] {
    return [...this.bulkheadsByKey.values()].map((bulkhead) => bulkhead.snapshot());
  }

  /**
   * Every kept retry budget: its key, this instance's figures, and whether it is shared (then
   * {@link findSharedRetryBudget} reads every instance's). Does not refresh their recency.
   */
  retryBudgets(): Array<
    RetryBudgetSnapshot & {
      /** The policy key the budget belongs to. */
      readonly key: string;
      /** Whether its window is shared by every instance (`retry.budget.shared`). */
      readonly shared: boolean;
    }
  > {
    return [...this.budgets.keyed()].map(([key, budget]) => ({ key, shared: this.sharedBudgets.get(key) !== undefined, ...budget.snapshot() }));
  }

  /** The shared retry budget of `key` if one exists (does not create one or refresh its recency). */
  findSharedRetryBudget(key: string): SharedRetryBudget | undefined {
    return this.sharedBudgets.get(key);
  }
}

/** Whether two rate limits decide alike (rate, burst, sharing and fallback). */
function sameRate(a: RateLimitOptions, b: RateLimitOptions): boolean {
  const parts = (o: RateLimitOptions) =>
    [o.requestsPerSecond, o.requestsPerMinute, o.burst, o.shared === true, o.fallback?.requestsPerSecond, o.fallback?.requestsPerMinute, o.fallback?.burst].join();
  return parts(a) === parts(b);
}
