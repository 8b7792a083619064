// The last good result of a call, served (stale, never past its ttl) while its dependency is down.
import type { Clock } from './clock.js';
import { isTransientError } from './classify.js';
import { ResilienceConfigError, isResilienceError } from './errors.js';
import { isUpstreamError } from './upstream-http.error.js';

/**
 * Options of a last-good cache (`@Fallback({ lastGood })`).
 * @publicApi
 */
export interface LastGoodOptions {
  /** How long a result may be served after it was produced, in ms (> 0). */
  readonly ttl: number;
  /** Results kept per policy key, least recently used dropped first. @default 1000 */
  readonly maxEntries?: number;
  /**
   * Share the results with every instance through the shared state backend (`forRoot({ sharedState })`,
   * `RedisPolicyState`): an instance whose dependency fails serves the youngest result any instance
   * produced. Results go there as JSON (a value JSON cannot represent stays in-process); the backend
   * keeps at most `maxEntries` per policy key and drops each `ttl` after it was produced. While the
   * backend is down or slow, this instance's own results are served. @default false
   */
  readonly shared?: boolean;
}

/** Header of an HTTP answer served from the last-good cache: its age in whole seconds (like `Age`). @publicApi */
export const STALE_HEADER = 'resilience-stale';

/** Default of {@link LastGoodOptions.maxEntries}. @publicApi */
export const DEFAULT_LAST_GOOD_ENTRIES = 1000;

/**
 * Checks `options` and fills in `maxEntries`.
 * @throws ResilienceConfigError naming the option and the fix.
 * @publicApi
 */
export function resolveLastGood(options: LastGoodOptions, where: string): Required<LastGoodOptions> {
  if (options === null || typeof options !== 'object' || !(options.ttl > 0) || !Number.isFinite(options.ttl)) {
    throw new ResilienceConfigError(`${where} has lastGood.ttl ${String(options?.ttl)}. Give how long a result may be served, in ms (> 0).`);
  }
  const maxEntries = options.maxEntries ?? DEFAULT_LAST_GOOD_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new ResilienceConfigError(`${where} has lastGood.maxEntries ${String(maxEntries)}. Give a whole number >= 1.`);
  }
  const shared = options.shared ?? false;
  if (typeof shared !== 'boolean') {
    throw new ResilienceConfigError(`${where} has lastGood.shared ${String(shared)}. Give true (one cache for every instance, on the shared state backend) or false.`);
  }
  return { ttl: options.ttl, maxEntries, shared };
}

/**
 * Whether a failure may be answered from the last-good cache: an open breaker, a timeout, or a
 * transient failure (what a retry would retry), also once retries are exhausted. Never a caller
 * abort, a bulkhead or rate-limit refusal (the dependency is not failing) or a permanent error.
 * @publicApi
 */
export function isStaleWorthy(error: unknown): boolean {
  if (isUpstreamError(error)) return error.code === 'circuit_open' || error.code === 'timeout' || error.retryable;
  if (isResilienceError(error)) {
    if (error.code === 'retries_exhausted') return isStaleWorthy(error.cause);
    return error.code === 'circuit_open' || error.code === 'timeout' || error.code === 'attempt_timeout';
  }
  return isTransientError(error);
}

/**
 * The shared side of one policy's last-good cache (`lastGood.shared`), as a shared state backend
 * keeps it: JSON text per call key, at most `maxEntries`, each gone `ttl` after it was produced.
 * @publicApi
 */
export interface SharedLastGoodBackend {
  /** Keeps `json` as the last good result of `key` (produced now, on the backend's clock). */
  set(key: string, json: string): Promise<void>;
  /** The result of `key` and its age on the backend's clock, or `undefined` when there is none younger than `ttl`. */
  get(key: string): Promise<SharedLastGoodEntry | undefined>;
}

/**
 * One result as a {@link SharedLastGoodBackend} answers it.
 * @publicApi
 */
export interface SharedLastGoodEntry {
  /** The result as JSON. */
  readonly json: string;
  /** How long ago it was produced, in ms, on the backend's clock. */
  readonly ageMs: number;
}

/**
 * A result served from the cache, with its age: what the engine answers with (an HTTP route adds
 * the {@link STALE_HEADER} header) after unwrapping it.
 * @publicApi
 */
export class StaleAnswer {
  constructor(
    /** The cached result. */
    readonly value: unknown,
    /** How long ago the result was produced, in ms. */
    readonly ageMs: number,
  ) {}
}

/**
 * Where the last good results of one policy are kept: in-process ({@link LastGoodCache}) or shared
 * by every instance (`SharedLastGoodCache`).
 * @publicApi
 */
export interface LastGoodStore {
  /** Keeps `value` as the last good result of `key`; never fails (a store that cannot keep it drops it). */
  set(key: string, value: unknown): void;
  /**
   * Whether {@link lookup} may find a result for `key`, answered without a round trip (a fallback
   * decides synchronously whether it handles a failure): `false` only when it certainly finds none.
   */
  mayHave(key: string): boolean;
  /** The last good result of `key` and its age, or `undefined`; never rejects. */
  lookup(key: string): StaleAnswer | undefined | Promise<StaleAnswer | undefined>;
}

/**
 * The last good result per call key of one policy: at most `maxEntries` (least recently used
 * dropped first), each served for `ttl` ms after it was produced, never later.
 * @publicApi
 */
export class LastGoodCache implements LastGoodStore {
  private readonly entries = new Map<string, { readonly value: unknown; readonly at: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly options: Pick<Required<LastGoodOptions>, 'ttl' | 'maxEntries'>,
  ) {}

  /** Results kept now. */
  get size(): number {
    return this.entries.size;
  }

  /** Keeps `value` as the last good result of `key`. */
  set(key: string, value: unknown): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: this.clock.now() });
    if (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /**
   * The last good result of `key` and its age, unless there is none or it is older than `ttl` (then
   * dropped). A result served becomes the most recently used.
   */
  get(key: string): StaleAnswer | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const ageMs = this.clock.now() - entry.at;
    this.entries.delete(key);
    if (ageMs >= this.options.ttl) return undefined;
    this.entries.set(key, entry);
    return new StaleAnswer(entry.value, ageMs);
  }

  mayHave(key: string): boolean {
    return this.get(key) !== undefined;
  }

  lookup(key: string): StaleAnswer | undefined {
    return this.get(key);
  }
}
