import { BulkheadPolicy, type BulkheadSnapshot } from './bulkhead.policy.js';
import { CircuitBreakerPolicy, type CircuitBreakerSnapshot } from './circuit-breaker.policy.js';
import type { BulkheadOptions, CircuitBreakerOptions, RetryBudgetOptions } from './options.js';
import type { PolicyEnvironment } from './policy.js';
import { RetryBudget, type RetryBudgetSnapshot } from './retry-budget.js';
import { requireSharedState, SharedRetryBudget, SharedStateGuard, type RetryPermits, type SharedPolicyState } from './shared-policy-state.js';
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
    this.bulkheadsByKey = new LruMap(maxKeys, (bulkhead) => bulkhead.active === 0 && bulkhead.queued === 0);
    this.budgets = new LruMap(maxKeys);
    this.sharedBudgets = new LruMap(maxKeys);
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
    return this.breakers.getOrCreate(key, () => {
      requireSharedState({ circuitBreaker: options }, `The circuit breaker "${key}"`, this.shared?.backend);
      return new CircuitBreakerPolicy(key, options, this.env, this.shared);
    });
  }

  /** The bulkhead of `key`, created with `options` on first use. */
  bulkhead(key: string, options: BulkheadOptions = {}): BulkheadPolicy {
    return this.bulkheadsByKey.getOrCreate(key, () => new BulkheadPolicy(key, options, this.env));
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
