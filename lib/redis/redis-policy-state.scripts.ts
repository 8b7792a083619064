// The server-side half of RedisPolicyState: one Lua script per decision (atomic across instances,
// on Redis' clock), run by SHA with EVALSHA, and the encoding of what goes in and comes back.
import type { BreakerOpenReason } from '../core/options.js';
import type { SharedBreakerOutcome, SharedBreakerState } from '../core/shared-policy-state.js';
import { isNoScript, type ScriptConnection } from './redis-connection.js';

/** Breaker state kept when a key sees no traffic: long enough to outlive any window or break. */
export const MIN_BREAKER_TTL_MS = 60_000;
/** Time buckets of the `time` strategy, as in the in-process window. */
const TIME_BUCKETS = 10;
/** Time buckets of the retry budget window, as in the in-process budget. */
export const BUDGET_BUCKETS = 20;

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
 * calls to deposit, mode (`d` deposit only, `a` deposit then acquire, `r` read: `{calls, retries}`
 * without writing), ttl.
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
local reading = ARGV[6] == 'r'
for i = 1, #fields, 2 do
  local kind, at = string.match(fields[i], '^(%a):(-?%d+)$')
  local age = epoch - tonumber(at)
  if age > ${BUDGET_BUCKETS} then
    if not reading then redis.call('HDEL', KEYS[1], fields[i]) end
  elseif kind == 'c' then
    if age < ${BUDGET_BUCKETS} then calls = calls + tonumber(fields[i + 1]) end
  else
    retries = retries + tonumber(fields[i + 1])
  end
end
if reading then return {calls, retries} end
local granted = 0
if retries + 1 <= ratio * calls + floor then
  redis.call('HINCRBY', KEYS[1], 'r:' .. epoch, 1)
  granted = 1
end
redis.call('PEXPIRE', KEYS[1], ttl)
return granted
`;

/**
 * KEYS[1] rate limit hash: `t` the theoretical arrival time of the next request (GCRA), `p` until
 * when the dependency's `Retry-After` pauses every instance, both in ms on Redis' clock.
 * ARGV: now, interval ms, burst, max wait ms (-1: none), mode (`a` acquire, `p` pause), pause ms.
 * Acquire: the turn goes `burst` intervals ahead of the arrival time at most, never before the
 * pause ends; it is reserved (the arrival time moves one interval on) unless it comes at or after
 * the max wait. In any `t` ms at most `burst + t / interval` turns are granted, whatever the
 * number of instances. Replies { granted 0/1, wait ms, pause left ms }. The hash lives as long as
 * it decides anything: past its arrival time and pause it equals an absent one.
 * Times are kept in fractions of a ms (`%.3f`): Lua's own number to text rounds to 14 digits.
 */
const RATE_LIMIT = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local h = redis.call('HMGET', KEYS[1], 't', 'p')
local tat = tonumber(h[1]) or 0
local paused = tonumber(h[2]) or 0
if ARGV[5] == 'p' then
  local until_ms = now + tonumber(ARGV[6])
  if until_ms > paused then
    paused = until_ms
    redis.call('HSET', KEYS[1], 'p', string.format('%.3f', paused))
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(paused, tat) - now) + 1)
  return {1, 0, math.ceil(paused - now)}
end
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local send_at = math.max(now, paused, tat - (burst - 1) * interval)
local wait = send_at - now
local pause_left = math.max(0, math.ceil(paused - now))
if max_wait >= 0 and wait > 0 and wait >= max_wait then
  return {0, math.ceil(wait), pause_left}
end
tat = math.max(tat, send_at) + interval
redis.call('HSET', KEYS[1], 't', string.format('%.3f', tat))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(paused, tat) - now) + 1)
return {1, math.ceil(wait), pause_left}
`;

// Last-good cache (`lastGood.shared`). KEYS[1] the index (sorted set of entry ids, scored by last
// use), KEYS[2] the entry (hash: v the JSON, at when it was produced), named KEYS[1] .. ':' .. id.
// An entry expires (PEXPIRE) `ttl` after it was produced, so Redis itself drops what may no longer
// be served; the index keeps at most `maxEntries` ids, and an id pushed out takes its entry with it
// (a key not in KEYS, but with KEYS[1]'s hash tag: the same slot). Scores are strictly increasing, so
// entries used in one millisecond still leave in the order they were used.
const LAST_GOOD_SCORE = `
local function next_score(now)
  local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if top[2] and tonumber(top[2]) >= now then return tonumber(top[2]) + 0.001 end
  return now
end
`;

// ARGV: now, ttl, maxEntries, id, json. Replies 1.
const LAST_GOOD_SET = `
${NOW}
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], 'v', ARGV[5], 'at', now)
redis.call('PEXPIRE', KEYS[2], ttl)
${LAST_GOOD_SCORE}
redis.call('ZADD', KEYS[1], next_score(now), ARGV[4])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then
  local out = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #out, 2 do redis.call('DEL', KEYS[1] .. ':' .. out[i]) end
end
-- every entry expires within ttl of the newest write: so may the index
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`;

// ARGV: now, ttl, id. Replies { json, age ms } or nil; a hit becomes the most recently used.
const LAST_GOOD_GET = `
${NOW}
local h = redis.call('HMGET', KEYS[2], 'v', 'at')
if not h[1] then
  redis.call('ZREM', KEYS[1], ARGV[3])
  return false
end
local age = math.max(0, now - tonumber(h[2]))
if age >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[3])
  return false
end
${LAST_GOOD_SCORE}
redis.call('ZADD', KEYS[1], 'XX', next_score(now), ARGV[3])
return {h[1], age}
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

/** The scripts of {@link RedisPolicyState}, one per decision. */
export const SCRIPTS = {
  breakerRecord: new Script(BREAKER_RECORD),
  breakerRead: new Script(BREAKER_READ),
  breakerReset: new Script(BREAKER_RESET),
  budget: new Script(BUDGET),
  rateLimit: new Script(RATE_LIMIT),
  lastGoodSet: new Script(LAST_GOOD_SET),
  lastGoodGet: new Script(LAST_GOOD_GET),
};

type StateReply = [number, string, number, string, number];

/** A breaker script's reply as the shared state. */
export function toState(reply: unknown): SharedBreakerState {
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
export function encodeOutcomes(outcomes: readonly SharedBreakerOutcome[]): string {
  let text = '';
  for (const outcome of outcomes) text += String((outcome.failure ? 1 : 0) | (outcome.slow ? 2 : 0) | (outcome.probe ? 4 : 0));
  return text;
}
