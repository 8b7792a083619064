import type { Redis } from 'ioredis';
import type { BreakerOpenReason } from '../core/circuit-breaker.policy.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { RetryBudgetWindow } from '../core/options.js';
import {
  DEFAULT_SHARED_STATE_FLUSH_INTERVAL,
  DEFAULT_SHARED_STATE_MAX_WAIT,
  DEFAULT_SHARED_STATE_SLOW_ANSWERS,
  DEFAULT_SHARED_STATE_RECOVERY_INTERVAL,
  type SharedBreakerBackend,
  type SharedBreakerOutcome,
  type SharedBreakerSettings,
  type SharedBreakerState,
  type SharedPolicyState,
  type SharedRetryBudgetBackend,
} from '../core/shared-policy-state.js';
import { positiveInteger } from './positive-integer.js';
import { channelSubscriptionOf, isNoScript, scriptConnectionOf, type ChannelSubscription, type NodeRedisClient, type ScriptConnection } from './redis-connection.js';

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

/** Breaker state kept when a key sees no traffic: long enough to outlive any window or break. */
const MIN_BREAKER_TTL_MS = 60_000;
/** Time buckets of the `time` strategy, as in the in-process window. */
const TIME_BUCKETS = 10;
/** Time buckets of the retry budget window, as in the in-process budget. */
const BUDGET_BUCKETS = 20;

// Every script reads the time from Redis (`TIME`) unless the caller passes one (tests): decisions
// and `openUntil` use one clock for all instances. Redis 5+ replicates scripts by effects, so
// reading TIME in a script that writes is allowed.
const NOW = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// KEYS[1] state hash, KEYS[2] window (list for count, hash for time).
// The generation of a new key starts at the current time in ms: a key recreated after a restart
// or expiry always has a newer generation than any an instance adopted before, so instances never
// take the fresh state for a stale answer (transitions are far rarer than one per millisecond).
const BREAKER_STATE = `
${NOW}
local h = redis.call('HMGET', KEYS[1], 'gen', 'state', 'until', 'opens', 'reason', 'psucc', 'fr', 'sr', 'n', 'f', 's')
local gen = tonumber(h[1])
if not gen then
  -- stored at once, so that every instance reading the new key learns the same generation
  gen = now
  redis.call('HSET', KEYS[1], 'gen', gen)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
local state = h[2] or 'c'
local open_until = tonumber(h[3]) or 0
local opens = tonumber(h[4]) or 0
local reason = h[5] or ''
local psucc = tonumber(h[6]) or 0
local fr, sr, n, f, s = tonumber(h[7]) or 0, tonumber(h[8]) or 0, tonumber(h[9]) or 0, tonumber(h[10]) or 0, tonumber(h[11]) or 0
local changed = false
local function reply()
  local remaining = 0
  if state == 'o' then remaining = math.max(0, open_until - now) end
  return {gen, state, remaining, reason, opens}
end
`;

const BREAKER_SAVE = `
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'gen', gen, 'state', state, 'until', open_until, 'opens', opens, 'reason', reason, 'psucc', psucc, 'fr', fr, 'sr', sr, 'n', n, 'f', f, 's', s)
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
local r = reply()
if changed then
  redis.call('PUBLISH', ARGV[4], cjson.encode({key = ARGV[5], gen = r[1], state = r[2], remaining = r[3], reason = r[4], opens = r[5]}))
end
return r
`;

const BREAKER_CLOSE = `
local function close()
  gen = gen + 1
  state = 'c'
  open_until = 0
  opens = 0
  reason = ''
  psucc = 0
  fr, sr, n, f, s = 0, 0, 0, 0, 0
  redis.call('DEL', KEYS[2])
  changed = true
end
`;

/**
 * ARGV: now, client generation, ttl, channel, key name, strategy, p1, p2, p3, slow rate (0: slow
 * calls not judged), half-open probes, next break ms, outcomes (one digit per call: bit 0 failure,
 * bit 1 slow, bit 2 probe).
 */
const BREAKER_RECORD = `
${BREAKER_STATE}
${BREAKER_CLOSE}
local strategy = ARGV[6]
local p1, p2, p3 = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local slow_rate = tonumber(ARGV[10])
local probes = tonumber(ARGV[11])
local next_break = tonumber(ARGV[12])
local outcomes = ARGV[13]
local client_gen = tonumber(ARGV[2])

local function open(why)
  gen = gen + 1
  state = 'o'
  opens = opens + 1
  open_until = now + next_break
  reason = why
  psucc = 0
  changed = true
end

local function rate_verdict(calls, failures, slow, minimum, ratio)
  if calls == 0 or calls < minimum then return nil end
  if failures / calls >= ratio then return 'failure_rate' end
  if slow_rate > 0 and slow / calls >= slow_rate then return 'slow_call_rate' end
  return nil
end

local bucket_ms = 0
local epoch = 0
if strategy == 'time' then
  bucket_ms = p1 / ${TIME_BUCKETS}
  epoch = math.floor(now / bucket_ms)
end

-- one outcome into the window, then the strategy's verdict (nil: stay closed)
local function record(failure, slow)
  if strategy == 'consecutive' then
    if failure then fr = fr + 1 else fr = 0 end
    if slow then sr = sr + 1 else sr = 0 end
    n = n + 1
    if failure then f = f + 1 end
    if slow then s = s + 1 end
    if fr >= p1 then return 'consecutive' end
    if slow_rate > 0 and sr >= p1 then return 'slow_call_rate' end
    return nil
  elseif strategy == 'count' then
    local code = 0
    if failure then code = code + 1 end
    if slow then code = code + 2 end
    redis.call('RPUSH', KEYS[2], code)
    n = n + 1
    if failure then f = f + 1 end
    if slow then s = s + 1 end
    if n > p1 then
      local evicted = tonumber(redis.call('LPOP', KEYS[2]))
      n = n - 1
      if evicted % 2 == 1 then f = f - 1 end
      if math.floor(evicted / 2) % 2 == 1 then s = s - 1 end
    end
    return rate_verdict(n, f, s, math.min(p3, p1), p2)
  else
    redis.call('HINCRBY', KEYS[2], 'c:' .. epoch, 1)
    if failure then redis.call('HINCRBY', KEYS[2], 'f:' .. epoch, 1) end
    if slow then redis.call('HINCRBY', KEYS[2], 's:' .. epoch, 1) end
    local fields = redis.call('HGETALL', KEYS[2])
    local calls, failures, slows = 0, 0, 0
    for i = 1, #fields, 2 do
      local kind, at = string.match(fields[i], '^(%a):(-?%d+)$')
      local age = epoch - tonumber(at)
      if age >= ${TIME_BUCKETS} then
        redis.call('HDEL', KEYS[2], fields[i])
      else
        local value = tonumber(fields[i + 1])
        if kind == 'c' then calls = calls + value elseif kind == 'f' then failures = failures + value else slows = slows + value end
      end
    end
    n, f, s = calls, failures, slows
    return rate_verdict(calls, failures, slows, p2, p3)
  end
end

-- outcomes of calls admitted under another generation say nothing about the current one
if client_gen < 0 or client_gen == gen then
  for i = 1, #outcomes do
    local code = string.byte(outcomes, i) - 48
    local failure = code % 2 == 1
    local slow = math.floor(code / 2) % 2 == 1
    local probe = code >= 4
    if state == 'o' then
      if probe then
        if failure or slow then
          open('probe_failed')
          break
        end
        psucc = psucc + 1
        if psucc >= probes then
          close()
          break
        end
      end
    else
      local why = record(failure, slow)
      if why then
        open(why)
        break
      end
    end
  end
end
${BREAKER_SAVE}
`;

const BREAKER_READ = `
${BREAKER_STATE}
return reply()
`;

const BREAKER_RESET = `
${BREAKER_STATE}
${BREAKER_CLOSE}
close()
${BREAKER_SAVE}
`;

/**
 * KEYS[1] budget hash (`c:<epoch>` calls, `r:<epoch>` retries). ARGV: now, bucket ms, ratio, floor,
 * calls to deposit, mode (`d` deposit only, `a` deposit then acquire), ttl.
 * The same exact rule as the in-process `RetryBudget`: a retry is granted only when every retry of
 * the buckets overlapping the window still fits under ratio × the calls of the buckets inside it.
 */
const BUDGET = `
${NOW}
local bucket_ms = tonumber(ARGV[2])
local ratio = tonumber(ARGV[3])
local floor = tonumber(ARGV[4])
local deposit = tonumber(ARGV[5])
local ttl = tonumber(ARGV[7])
local epoch = math.floor(now / bucket_ms)
if deposit > 0 then redis.call('HINCRBY', KEYS[1], 'c:' .. epoch, deposit) end
if ARGV[6] == 'd' then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
local fields = redis.call('HGETALL', KEYS[1])
local calls, retries = 0, 0
for i = 1, #fields, 2 do
  local kind, at = string.match(fields[i], '^(%a):(-?%d+)$')
  local age = epoch - tonumber(at)
  if age > ${BUDGET_BUCKETS} then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif kind == 'c' then
    if age < ${BUDGET_BUCKETS} then calls = calls + tonumber(fields[i + 1]) end
  else
    retries = retries + tonumber(fields[i + 1])
  end
end
local granted = 0
if retries + 1 <= ratio * calls + floor then
  redis.call('HINCRBY', KEYS[1], 'r:' .. epoch, 1)
  granted = 1
end
redis.call('PEXPIRE', KEYS[1], ttl)
return granted
`;

/** A Lua script with its SHA1, run with EVALSHA (EVAL after a NOSCRIPT, such as after a restart). */
class Script {
  private sha: string | undefined;

  constructor(private readonly source: string) {}

  async run(client: ScriptConnection, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    // A client without an offline queue rejects at once while disconnected; with the offline queue
    // the command would wait for the reconnect, which the policies' maxWait cuts short.
    if (this.sha !== undefined) {
      try {
        return await client.evalsha(this.sha, keys, args);
      } catch (error) {
        if (!isNoScript(error)) throw error;
      }
    }
    // first use, or the server lost its script cache (a restart, SCRIPT FLUSH, a failover)
    this.sha = await client.scriptLoad(this.source);
    return client.evalsha(this.sha, keys, args);
  }
}

const SCRIPTS = {
  breakerRecord: new Script(BREAKER_RECORD),
  breakerRead: new Script(BREAKER_READ),
  breakerReset: new Script(BREAKER_RESET),
  budget: new Script(BUDGET),
};

type StateReply = [number, string, number, string, number];

function toState(reply: unknown): SharedBreakerState {
  const [generation, state, remaining, reason, opens] = reply as StateReply;
  return {
    generation: Number(generation),
    state: state === 'o' ? 'open' : 'closed',
    remainingMs: Number(remaining),
    ...(state === 'o' && reason ? { reason: reason as BreakerOpenReason } : {}),
    opens: Number(opens),
  };
}

/** One digit per outcome: bit 0 failure, bit 1 slow, bit 2 probe. */
function encodeOutcomes(outcomes: readonly SharedBreakerOutcome[]): string {
  let text = '';
  for (const outcome of outcomes) text += String((outcome.failure ? 1 : 0) | (outcome.slow ? 2 : 0) | (outcome.probe ? 4 : 0));
  return text;
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
 * Costs: no round trip on the admission path; one script per `flushInterval` per busy key (outcomes,
 * calls); one awaited script per retry. Pass it to `ResilienceModule.forRoot({ sharedState })`.
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
    const run = (calls: number, mode: 'd' | 'a') =>
      SCRIPTS.budget.run(this.client, keys, [this.now?.() ?? '', bucketMs, options.ratio, floor, calls, mode, ttl]);
    return {
      deposit: async (calls) => {
        await run(calls, 'd');
      },
      acquire: async (calls) => Number(await run(calls, 'a')) === 1,
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
