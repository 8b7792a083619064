import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ResilienceConfigError } from '../core/errors.js';
import type { SharedLastGoodBackend } from '../core/last-good.js';
import type { RetryBudgetWindow } from '../core/options.js';
import type { ResolvedRate, SharedRateLimitBackend } from '../core/rate-limiter.js';
import {
  DEFAULT_SHARED_STATE_FLUSH_INTERVAL,
  DEFAULT_SHARED_STATE_MAX_WAIT,
  DEFAULT_SHARED_STATE_SLOW_ANSWERS,
  DEFAULT_SHARED_STATE_RECOVERY_INTERVAL,
  type SharedBreakerBackend,
  type SharedBreakerSettings,
  type SharedBreakerState,
  type SharedPolicyState,
  type SharedRetryBudgetBackend,
} from '../core/shared-policy-state.js';
import { positiveInteger } from './positive-integer.js';
import { channelSubscriptionOf, scriptConnectionOf, type ChannelSubscription, type NodeRedisClient, type ScriptConnection } from './redis-connection.js';
import { BUDGET_BUCKETS, encodeOutcomes, MIN_BREAKER_TTL_MS, SCRIPTS, toState } from './redis-policy-state.scripts.js';

/**
 * Options of {@link RedisPolicyState}.
 * @publicApi
 */
export interface RedisPolicyStateOptions {
  /**
   * The client the scripts run on: an ioredis 5 `Redis`, or a connected node-redis 5 client. Create
   * it so that commands fail at once while disconnected (ioredis `enableOfflineQueue: false`,
   * node-redis `disableOfflineQueue: true`): the policies then fall back without waiting `maxWait`.
   */
  readonly client: Redis | NodeRedisClient;
  /**
   * Connection for pushed breaker transitions (SUBSCRIBE needs a connection of its own), of the
   * same library as `client` (a node-redis one connected).
   * @default client.duplicate() (ioredis: with the offline queue on), closed by {@link RedisPolicyState.close}
   */
  readonly subscriber?: Redis | NodeRedisClient;
  /** Prefix of every key and of the pub/sub channel. @default 'nest-resilience:' */
  readonly prefix?: string;
  /**
   * Longest wait for Redis before a policy uses its in-process state, in ms: a retry waits at most
   * this long for its permit.
   * @default 50
   */
  readonly maxWait?: number;
  /**
   * Answers later than `maxWait` in a row before Redis counts as down (a failed call counts at once;
   * calls late together, through one stall, count as one).
   * @default 3
   */
  readonly slowAnswersBeforeFallback?: number;
  /** How long breaker outcomes and budget calls are batched before they are sent, in ms. @default 20 */
  readonly flushInterval?: number;
  /** How often Redis is pinged during an outage, to come back to shared state, in ms. @default 1000 */
  readonly recoveryInterval?: number;
}

/**
 * Breaker and retry budget state shared by every instance of an application through Redis
 * (ioredis or node-redis). Each decision is one Lua script, so it is atomic across instances and
 * uses Redis' clock:
 *
 * - **Breaker** (`<prefix>{<key>}:cb` hash, plus `:cb:w` for the `count` / `time` window): every
 *   instance's outcomes, sent in batches every `flushInterval`, feed one window with the same
 *   strategies as in-process (`consecutive` and `count` in the order batches reach Redis, `time` in
 *   Redis' clock). The script opens it (with the break the instance computed), records when the break
 *   ends, and publishes each transition on `<prefix>breaker` so every instance adopts it at once.
 *   Probing stays per instance. TTL: 60 s, or twice the time window or the longest break if longer.
 * - **Retry budget** (`<prefix>{<key>}:rb` hash of 20 time buckets): calls are deposited in batches,
 *   and each retry is granted by the script against the calls and retries of all instances. TTL:
 *   twice the window.
 *
 * - **Rate limit** (`<prefix>{<key>}:rl` hash, `rateLimit.shared`): GCRA on Redis' clock, one
 *   script per permit, which also carries the dependency's `Retry-After` pause to every instance.
 *   Kept as long as it decides anything (until the next turn or the pause's end).
 * - **Last good results** (`@Fallback({ lastGood: { shared: true } })`): `<prefix>{<key>}:lg` (a
 *   sorted set of at most `maxEntries` entries, least recently used dropped first) and one hash per
 *   entry (`:lg:<sha256 of the call key>`, the result as JSON and when it was produced), which Redis
 *   expires `ttl` after it was produced. One script per success (not awaited by the call) and one per
 *   failure that may be answered from it.
 *
 * Costs: no round trip on the admission path of breakers; one script per `flushInterval` per busy
 * key (outcomes, calls); one awaited script per retry and per rate-limited request. Pass it to `ResilienceModule.forRoot({ sharedState })`.
 * @example
 * const client = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false });
 * client.on('error', (error) => logger.warn(`Redis: ${error.message}`));
 * ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) })
 * @publicApi
 */
export class RedisPolicyState implements SharedPolicyState {
  readonly maxWait: number;
  readonly slowAnswersBeforeFallback: number;
  readonly flushInterval: number;
  readonly recoveryInterval: number;
  private readonly client: ScriptConnection;
  private readonly prefix: string;
  private readonly channel: string;
  private readonly subscription: ChannelSubscription;
  private subscribed: Promise<unknown> | undefined;
  private readonly listeners = new Map<string, Set<(state: SharedBreakerState) => void>>();
  /** Test seam: the time passed to the scripts instead of Redis' `TIME`. @internal */
  now: (() => number) | undefined;

  constructor(options: RedisPolicyStateOptions) {
    if (options?.client === undefined || options.client === null) {
      throw new ResilienceConfigError(
        'RedisPolicyState needs `client`, an ioredis Redis or a connected node-redis client of your app; pass it, e.g. new RedisPolicyState({ client: new Redis(process.env.REDIS_URL) }).',
      );
    }
    const owner = 'RedisPolicyState';
    this.client = scriptConnectionOf(options.client, owner);
    this.subscription = channelSubscriptionOf(options.client, options.subscriber, owner);
    this.prefix = options.prefix ?? 'nest-resilience:';
    this.channel = `${this.prefix}breaker`;
    this.maxWait = positiveInteger(owner, 'maxWait', options.maxWait ?? DEFAULT_SHARED_STATE_MAX_WAIT, DEFAULT_SHARED_STATE_MAX_WAIT);
    this.slowAnswersBeforeFallback = positiveInteger(owner, 'slowAnswersBeforeFallback', options.slowAnswersBeforeFallback ?? DEFAULT_SHARED_STATE_SLOW_ANSWERS, DEFAULT_SHARED_STATE_SLOW_ANSWERS);
    this.flushInterval = positiveInteger(owner, 'flushInterval', options.flushInterval ?? DEFAULT_SHARED_STATE_FLUSH_INTERVAL, DEFAULT_SHARED_STATE_FLUSH_INTERVAL);
    this.recoveryInterval = positiveInteger(owner, 'recoveryInterval', options.recoveryInterval ?? DEFAULT_SHARED_STATE_RECOVERY_INTERVAL, DEFAULT_SHARED_STATE_RECOVERY_INTERVAL);
  }

  circuitBreaker(key: string, settings: SharedBreakerSettings, onChange: (state: SharedBreakerState) => void): SharedBreakerBackend {
    const keys = [`${this.prefix}{${key}}:cb`, `${this.prefix}{${key}}:cb:w`];
    const { strategy } = settings;
    const params =
      strategy.type === 'consecutive'
        ? [strategy.threshold, 0, 0]
        : strategy.type === 'count'
          ? [strategy.size, strategy.failureRatio, strategy.minimumCalls]
          : [strategy.window, strategy.minimumThroughput, strategy.failureRatio];
    const ttl = Math.max(MIN_BREAKER_TTL_MS, 2 * (strategy.type === 'time' ? strategy.window : 0), 2 * settings.maxBreakDuration);
    const common = (): Array<string | number> => [this.now?.() ?? '', -1, ttl, this.channel, key];
    this.listen(key, onChange);
    const backend: SharedBreakerBackend = {
      record: async (outcomes, nextBreakMs) => {
        const args = common();
        // only the newest generation of the batch can still count (-1: admitted before this
        // instance heard of any, judged as the current one); the script drops it too if stale
        const generation = outcomes.reduce((newest, outcome) => Math.max(newest, outcome.generation), -1);
        args[1] = generation;
        const current = outcomes.filter((outcome) => outcome.generation === generation || outcome.generation === -1);
        const reply = await SCRIPTS.breakerRecord.run(this.client, keys, [
          ...args,
          strategy.type,
          ...params,
          settings.slowCall?.rateThreshold ?? 0,
          settings.halfOpenProbes,
          Math.max(1, Math.round(nextBreakMs)),
          encodeOutcomes(current),
        ]);
        return toState(reply);
      },
      read: async () => toState(await SCRIPTS.breakerRead.run(this.client, keys, common())),
      reset: async () => toState(await SCRIPTS.breakerReset.run(this.client, keys, common())),
      release: () => this.unlisten(key, onChange),
    };
    // a transition published before the subscription took effect never arrives: read the state once it has
    void this.subscribed
      ?.then(() => backend.read())
      .then((state) => {
        if (this.listeners.get(key)?.has(onChange)) onChange(state);
      })
      .catch(() => undefined);
    return backend;
  }

  retryBudget(key: string, options: RetryBudgetWindow): SharedRetryBudgetBackend {
    const keys = [`${this.prefix}{${key}}:rb`];
    const bucketMs = options.window / BUDGET_BUCKETS;
    const floor = (options.minRetriesPerSecond * options.window) / 1000;
    const ttl = 2 * options.window;
    const run = (calls: number, mode: 'd' | 'a' | 'r') =>
      SCRIPTS.budget.run(this.client, keys, [this.now?.() ?? '', bucketMs, options.ratio, floor, calls, mode, ttl]);
    return {
      deposit: async (calls) => {
        await run(calls, 'd');
      },
      acquire: async (calls) => Number(await run(calls, 'a')) === 1,
      read: async () => {
        const [calls, retries] = (await run(0, 'r')) as [unknown, unknown];
        return { calls: Number(calls), retries: Number(retries) };
      },
    };
  }

  rateLimiter(key: string, rate: ResolvedRate): SharedRateLimitBackend {
    const keys = [`${this.prefix}{${key}}:rl`];
    const run = async (mode: 'a' | 'p', maxWaitMs: number, pauseMs: number) => {
      const reply = (await SCRIPTS.rateLimit.run(this.client, keys, [
        this.now?.() ?? '',
        rate.intervalMs,
        rate.burst,
        Number.isFinite(maxWaitMs) ? Math.max(0, Math.floor(maxWaitMs)) : -1,
        mode,
        pauseMs,
      ])) as [number, number, number];
      return { granted: Number(reply[0]) === 1, waitMs: Number(reply[1]), pausedMs: Number(reply[2]) };
    };
    return {
      acquire: (maxWaitMs) => run('a', maxWaitMs, 0),
      pause: async (pauseMs) => {
        await run('p', Infinity, Math.max(1, Math.ceil(pauseMs)));
      },
    };
  }

  lastGood(key: string, options: { readonly ttl: number; readonly maxEntries: number }): SharedLastGoodBackend {
    const index = `${this.prefix}{${key}}:lg`;
    // a call key can be long (arguments as JSON): entries are named by its digest
    const idOf = (callKey: string) => createHash('sha256').update(callKey).digest('base64url');
    const ttl = Math.max(1, Math.ceil(options.ttl));
    return {
      set: async (callKey, json) => {
        const id = idOf(callKey);
        await SCRIPTS.lastGoodSet.run(this.client, [index, `${index}:${id}`], [this.now?.() ?? '', ttl, options.maxEntries, id, json]);
      },
      get: async (callKey) => {
        const id = idOf(callKey);
        const reply = (await SCRIPTS.lastGoodGet.run(this.client, [index, `${index}:${id}`], [this.now?.() ?? '', ttl, id])) as [unknown, unknown] | null;
        if (reply === null || reply === undefined) return undefined;
        return { json: String(reply[0]), ageMs: Number(reply[1]) };
      },
    };
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  /** Closes the subscriber connection it created, or unsubscribes yours (the `client` stays the caller's to close). */
  async close(): Promise<void> {
    this.listeners.clear();
    this.subscribed = undefined;
    await this.subscription.close(this.channel);
  }

  /** Nest calls it at shutdown when the backend is provided through `ResilienceModule`: {@link close}. */
  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  private listen(key: string, onChange: (state: SharedBreakerState) => void): void {
    let forKey = this.listeners.get(key);
    if (forKey === undefined) this.listeners.set(key, (forKey = new Set()));
    forKey.add(onChange);
    if (this.subscribed !== undefined) return;
    // a failed subscription only costs speed: instances still learn transitions from their batches
    this.subscribed = this.subscription.subscribe(this.channel, (message) => this.dispatch(message)).catch(() => undefined);
  }

  private unlisten(key: string, onChange: (state: SharedBreakerState) => void): void {
    const forKey = this.listeners.get(key);
    forKey?.delete(onChange);
    if (forKey?.size === 0) this.listeners.delete(key);
  }

  private dispatch(message: string): void {
    let parsed: { key: string; gen: number; state: string; remaining: number; reason: string; opens: number };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return;
    }
    const listeners = this.listeners.get(parsed.key);
    if (listeners === undefined) return;
    const state = toState([parsed.gen, parsed.state, parsed.remaining, parsed.reason, parsed.opens]);
    for (const listener of listeners) listener(state);
  }
}
