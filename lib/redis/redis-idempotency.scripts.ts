import { createHash } from 'node:crypto';

/**
 * The server-side half of `RedisIdempotencyStore`: one Lua script per operation, so each operation
 * is one atomic round trip. Every script touches exactly one key (KEYS[1], the record's hash), so
 * it runs on Redis Cluster too. Time is the Redis server's (`TIME`), never the app's; Redis 5+
 * replicates scripts by their effects, which is what makes `TIME` before a write legal.
 *
 * Hash fields: `status` (`in_progress` | `completed`), `fingerprint`, `owner`, `fence`,
 * `locked_until` (epoch ms, server clock), `method`, `path`, `response` (JSON
 * `[status, headers, body, encoding]`; a completed record has an empty `owner`). Retention is the
 * key's own expiry (PEXPIRE).
 * @internal
 */
export interface RedisScript {
  readonly name: string;
  readonly lua: string;
  /** SHA1 of `lua`, for EVALSHA. */
  readonly sha: string;
}

const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

/**
 * ARGV: fingerprint, owner, leaseMs, ttlMs, method, path.
 * Returns `{'acquired', fence, takeover}`, `{'completed', same, response}` or
 * `{'in_progress', same, retryAfterMs}` (`same`/`takeover`: 1 or 0).
 */
const CLAIM = `
local key = KEYS[1]
local fingerprint, lease, ttl = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local record = redis.call('HMGET', key, 'status', 'fingerprint', 'fence', 'locked_until', 'response')
local fence, takeover = 1, 0
if record[1] == 'completed' then
  -- a replay (or 422) needs no clock
  return {'completed', (record[2] == fingerprint) and 1 or 0, record[5]}
end
${NOW}
if record[1] then
  local same = (record[2] == fingerprint) and 1 or 0
  local lockedUntil = tonumber(record[4])
  -- a live lease, or an expired one of another request (never let it inherit a half-done key)
  if lockedUntil > now or same == 0 then
    return {'in_progress', same, math.max(0, lockedUntil - now)}
  end
  fence, takeover = tonumber(record[3]) + 1, 1
end
redis.call('HSET', key, 'status', 'in_progress', 'fingerprint', fingerprint, 'owner', ARGV[2], 'fence', fence,
  'locked_until', now + lease, 'method', ARGV[5], 'path', ARGV[6])
-- retention bounds an abandoned claim too, but never ends a live lease
redis.call('PEXPIRE', key, math.max(ttl, lease))
return {'acquired', fence, takeover}
`;

/** The fenced compare-and-set every write after the claim starts with. */
const OWNED = `
local owned = redis.call('HMGET', KEYS[1], 'status', 'owner')
if owned[1] ~= 'in_progress' or owned[2] ~= ARGV[1] then return 0 end
`;

/** ARGV: owner, leaseMs. Returns 1, or 0 when the lease was lost. */
const HEARTBEAT = `${OWNED}${NOW}
local lease = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'locked_until', now + lease)
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 1
`;

/** ARGV: owner, ttlMs, response JSON. Returns 1, or 0 when the lease was lost. */
const COMPLETE = `${OWNED}
-- the owner is cleared in the same write (no HDEL): a completed record has none, and its lease no longer matters
redis.call('HSET', KEYS[1], 'status', 'completed', 'response', ARGV[3], 'owner', '')
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
`;

/** ARGV: owner. Returns 1, or 0 when the lease was lost. */
const RELEASE = `${OWNED}
redis.call('DEL', KEYS[1])
return 1
`;

function script(name: string, lua: string): RedisScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** @internal */
export const IDEMPOTENCY_SCRIPTS = {
  claim: script('claim', CLAIM),
  heartbeat: script('heartbeat', HEARTBEAT),
  complete: script('complete', COMPLETE),
  release: script('release', RELEASE),
} as const;
