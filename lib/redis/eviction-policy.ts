import { ResilienceConfigError } from '../core/errors.js';
import type { ScriptConnection } from './redis-connection.js';

/**
 * What the Redis idempotency store learned about the server's `maxmemory-policy`: safe, or safe
 * enough with a warning for operators (a `volatile-*` policy, an `allkeys-*` one the user accepted,
 * a policy the user declared because `CONFIG GET` is not allowed).
 * @internal
 */
export interface EvictionPolicyVerdict {
  /** The policy the decision was made on. */
  readonly policy: string;
  /** Whether the policy was read from the server (`false`: the `maxmemoryPolicy` option was used). */
  readonly readFromServer: boolean;
  /** A sentence for the operators' log, when the policy deserves one. */
  readonly warning?: string;
}

/**
 * How the store treats the server's eviction policy: the options of `RedisIdempotencyStore` that
 * decide it.
 * @internal
 */
export interface EvictionPolicyOptions {
  /** Accept an `allkeys-*` policy (the user knows the risk). */
  readonly allowEvictingPolicy?: boolean;
  /** The policy to assume when the server refuses `CONFIG GET` (managed Redis, renamed CONFIG, ACL). */
  readonly maxmemoryPolicy?: string;
}

/** Every `maxmemory-policy` Redis 7 and Valkey 8 know. */
const KNOWN_POLICIES: ReadonlySet<string> = new Set([
  'noeviction',
  'allkeys-lru',
  'allkeys-lfu',
  'allkeys-random',
  'volatile-lru',
  'volatile-lfu',
  'volatile-random',
  'volatile-ttl',
]);

/**
 * Checks the `maxmemory-policy` option value a user declared; a start-up error for an unknown one.
 * @internal
 */
export function validateDeclaredPolicy(owner: string, policy: unknown): string | undefined {
  if (policy === undefined) return undefined;
  if (typeof policy !== 'string' || !KNOWN_POLICIES.has(policy)) {
    throw new ResilienceConfigError(
      `${owner}: maxmemoryPolicy must be the server's maxmemory-policy, one of ${[...KNOWN_POLICIES].join(', ')} (got ${JSON.stringify(policy)}).`,
    );
  }
  return policy;
}

/**
 * Reads the server's `maxmemory-policy` (`CONFIG GET`) and decides whether idempotency records may
 * live there. Every record carries an expiry, so any policy but `noeviction` may evict one under
 * memory pressure; an evicted **in-progress** record lets a duplicate run the handler again.
 *
 * - `noeviction`: safe (a full Redis refuses the claim, which is answered 503).
 * - `volatile-*`: accepted with a warning (records are evictable; keep memory to spare and watch `evicted_keys`).
 * - `allkeys-*`: refused with a {@link ResilienceConfigError} naming the fix, unless `allowEvictingPolicy`.
 * - `CONFIG GET` refused by the server (managed Redis, `rename-command`, an ACL without `+config|get`):
 *   refused with the fix named, unless `maxmemoryPolicy` declares the policy.
 *
 * Connection failures and timeouts are thrown as they are (the caller retries the check later).
 * @internal
 */
export async function checkEvictionPolicy(connection: ScriptConnection, options: EvictionPolicyOptions, owner: string): Promise<EvictionPolicyVerdict> {
  let policy: string | undefined;
  let readFromServer = true;
  try {
    policy = policyOf(await connection.command(['CONFIG', 'GET', 'maxmemory-policy']));
  } catch (error) {
    if (!isServerRefusal(error)) throw error;
    if (options.maxmemoryPolicy === undefined) {
      throw new ResilienceConfigError(
        `${owner} could not read the Redis maxmemory-policy: the server refused CONFIG GET (${firstLine(error)}), as managed services and restricted ACL users do. ` +
          `Records must not be evicted (an evicted in-progress record lets a duplicate run the handler again): make sure the policy is noeviction, then declare it with new RedisIdempotencyStore({ ..., maxmemoryPolicy: 'noeviction' }), ` +
          `or allow CONFIG GET for this user (ACL SETUSER <user> +config|get).`,
      );
    }
    policy = options.maxmemoryPolicy;
    readFromServer = false;
  }
  if (policy === undefined) {
    // an empty answer: a server or proxy without the option (treated like a refusal)
    if (options.maxmemoryPolicy === undefined) {
      throw new ResilienceConfigError(
        `${owner} could not read the Redis maxmemory-policy (CONFIG GET returned nothing, as some proxies do). Make sure the policy is noeviction, then declare it with new RedisIdempotencyStore({ ..., maxmemoryPolicy: 'noeviction' }).`,
      );
    }
    policy = options.maxmemoryPolicy;
    readFromServer = false;
  }
  const source = readFromServer ? 'the Redis server' : 'the maxmemoryPolicy option';
  if (policy.startsWith('allkeys-')) {
    if (!options.allowEvictingPolicy) {
      throw new ResilienceConfigError(
        `${owner} refuses to start: ${source} says maxmemory-policy is ${policy}, so under memory pressure Redis may evict an in-progress idempotency record and let a duplicate request run the handler a second time. ` +
          `Set maxmemory-policy noeviction on that server (CONFIG SET maxmemory-policy noeviction, and in redis.conf), or use a Redis of its own for idempotency; ` +
          `to accept the risk, pass new RedisIdempotencyStore({ ..., allowEvictingPolicy: true }).`,
      );
    }
    return { policy, readFromServer, warning: `${owner}: maxmemory-policy is ${policy} and allowEvictingPolicy is set: under memory pressure Redis may evict an in-progress record, and a duplicate request may then run the handler again.` };
  }
  if (policy.startsWith('volatile-')) {
    return {
      policy,
      readFromServer,
      warning: `${owner}: maxmemory-policy is ${policy}; every idempotency record carries an expiry, so Redis evicts records when it reaches maxmemory (an evicted in-progress record lets a duplicate run the handler again). Keep memory to spare and alert on evicted_keys, or use noeviction.`,
    };
  }
  if (policy !== 'noeviction') {
    return { policy, readFromServer, warning: `${owner}: maxmemory-policy is ${policy}, which this version does not know; make sure it never evicts keys that carry an expiry (noeviction is the safe choice).` };
  }
  return { policy, readFromServer };
}

/** The value of a `CONFIG GET` reply: `[name, value]` (RESP2) or `{ name: value }` / a Map (RESP3). */
function policyOf(reply: unknown): string | undefined {
  if (Array.isArray(reply)) return reply.length >= 2 ? String(reply[1]) : undefined;
  if (reply instanceof Map) return reply.has('maxmemory-policy') ? String(reply.get('maxmemory-policy')) : undefined;
  if (typeof reply === 'object' && reply !== null && 'maxmemory-policy' in reply) return String((reply as Record<string, unknown>)['maxmemory-policy']);
  return undefined;
}

/**
 * Whether the server answered with an error reply (`ERR unknown command`, `NOPERM …`), as opposed
 * to the connection failing: Redis error replies start with an upper-case code.
 */
function isServerRefusal(error: unknown): boolean {
  return error instanceof Error && /^[A-Z][A-Z_]+ /.test(error.message);
}

function firstLine(error: unknown): string {
  return (error as Error).message.split('\n')[0]!.slice(0, 200);
}
