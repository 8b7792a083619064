import { BulkheadPolicy } from './bulkhead.policy.js';
import { CircuitBreakerPolicy, type CircuitBreakerSnapshot } from './circuit-breaker.policy.js';
import type { BulkheadOptions, CircuitBreakerOptions, RetryBudgetOptions } from './options.js';
import type { PolicyEnvironment } from './policy.js';
import { RetryBudget } from './retry-budget.js';
import { resolveRetryBudgetOptions } from './validate.js';

/**
 * Options of a {@link PolicyRegistry}.
 * @publicApi
 */
export interface PolicyRegistryOptions {
  /** Most keys kept per kind (breakers, bulkheads, budgets); the least recently used go first. @default 1000 */
  readonly maxKeys?: number;
}

/** A least-recently-used map whose eviction can skip entries that must survive. */
class LruMap<V> {
  private readonly entries = new Map<string, V>();

  constructor(
    private readonly maxKeys: number,
    private readonly evictable: (value: V) => boolean = () => true,
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
        return;
      }
      fallback ??= key;
    }
    if (fallback !== undefined) this.entries.delete(fallback);
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

  constructor(
    private readonly env: PolicyEnvironment,
    options: PolicyRegistryOptions = {},
  ) {
    const maxKeys = options.maxKeys ?? 1000;
    this.breakers = new LruMap(maxKeys, (breaker) => breaker.state === 'closed');
    this.bulkheads = new LruMap(maxKeys, (bulkhead) => bulkhead.active === 0 && bulkhead.queued === 0);
    this.budgets = new LruMap(maxKeys);
  }

  /** The breaker of `key`, created with `options` on first use. */
  circuitBreaker(key: string, options: CircuitBreakerOptions = {}): CircuitBreakerPolicy {
    return this.breakers.getOrCreate(key, () => new CircuitBreakerPolicy(key, options, this.env));
  }

  /** The bulkhead of `key`, created with `options` on first use. */
  bulkhead(key: string, options: BulkheadOptions = {}): BulkheadPolicy {
    return this.bulkheads.getOrCreate(key, () => new BulkheadPolicy(key, options, this.env));
  }

  /** The retry budget of `key`, created with `options` on first use. */
  retryBudget(key: string, options: RetryBudgetOptions = {}): RetryBudget {
    return this.budgets.getOrCreate(key, () => new RetryBudget(resolveRetryBudgetOptions(options), this.env.clock));
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
