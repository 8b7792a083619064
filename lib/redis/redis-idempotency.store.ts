import { randomUUID } from 'node:crypto';
import { Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { createRequire } from 'node:module';
import type { Cluster, Redis } from 'ioredis';
import { systemClock } from '../core/clock.js';
import { DeadlineQueue } from '../core/deadline-queue.js';
import { ResilienceConfigError } from '../core/errors.js';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  StoredResponse,
} from '../core/idempotency/idempotency-store.interface.js';
import { recordIdOf } from '../core/idempotency/record-id.js';
import { checkEvictionPolicy, validateDeclaredPolicy, type EvictionPolicyOptions } from './eviction-policy.js';
import { positiveInteger } from './positive-integer.js';
import { isNoScript, scriptConnectionOf, type RedisStoreClient, type ScriptConnection } from './redis-connection.js';
import { IDEMPOTENCY_SCRIPTS, type RedisScript } from './redis-idempotency.scripts.js';
import { RedisStoreTimeoutError, RedisStoreUnavailableError } from './redis-store.errors.js';

/**
 * Options of {@link RedisIdempotencyStore}. Give exactly one of `client` and `url`.
 * @example
 * const options: RedisIdempotencyStoreOptions = { client: redis, keyPrefix: 'idempotency:orders:', commandTimeoutMs: 500 };
 * @publicApi
 */
export interface RedisIdempotencyStoreOptions<C extends RedisStoreClient = Redis | Cluster> {
  /**
   * A client your app already has: an ioredis 5 `Redis` or `Cluster`, or a node-redis 5 client
   * (`createClient()`, connected by you). The store never closes it. Prefer one that fails fast
   * while disconnected: ioredis `enableOfflineQueue: false`, node-redis `disableOfflineQueue: true`
   * (see the class notes on outages). node-redis costs less CPU per command (BENCHMARKS.md).
   */
  client?: C;
  /**
   * A `redis://` / `rediss://` URL: the store opens its own ioredis connection (so `ioredis` must
   * be installed), set up to fail fast during an outage (no offline queue, no resent commands,
   * reconnect forever with capped backoff), and closes it on application shutdown (so such a store
   * serves one application; pass `client` to share one store between several apps in a process).
   */
  url?: string;
  /**
   * Prepended to every record key (`<keyPrefix><sha256 of namespace, scope and key>`). Give each
   * app (or environment) sharing one Redis its own prefix.
   * @default 'idempotency:'
   */
  keyPrefix?: string;
  /**
   * The longest one store operation may take, in ms, before it fails (and the request is answered
   * 503 `idempotency_store_timeout`, or `idempotency_store_unavailable` while the first connection
   * is still being made). Enforced by the store whatever the client's own settings: the deadlines
   * of all commands in flight share one timer.
   * @default 1000
   */
  commandTimeoutMs?: number;
  /**
   * Start even though the server's `maxmemory-policy` is `allkeys-*`. By default the store reads
   * the policy (`CONFIG GET`) when it first connects and refuses to serve under `allkeys-*`: Redis
   * may then evict an in-progress record under memory pressure, and a duplicate request would run
   * the handler again. Set it only when that risk is accepted (a warning is logged).
   * @default false
   */
  allowEvictingPolicy?: boolean;
  /**
   * The server's `maxmemory-policy`, for servers that refuse `CONFIG GET` (managed services,
   * `rename-command CONFIG`, an ACL user without `+config|get`): the store then trusts this value
   * instead of refusing to start. Ignored when the server answers `CONFIG GET`.
   * @example 'noeviction'
   */
  maxmemoryPolicy?: 'noeviction' | 'allkeys-lru' | 'allkeys-lfu' | 'allkeys-random' | 'volatile-lru' | 'volatile-lfu' | 'volatile-random' | 'volatile-ttl';
}

const DEFAULT_KEY_PREFIX = 'idempotency:';
const DEFAULT_COMMAND_TIMEOUT_MS = 1_000;
/** Reconnect backoff of a store-owned connection: 50 ms doubling, capped. */
const MAX_RECONNECT_DELAY_MS = 2_000;
/** How long an owned connection's QUIT may take on shutdown before it is cut. */
const QUIT_TIMEOUT_MS = 1_000;

/**
 * An {@link IdempotencyStore} on Redis (or Valkey) through ioredis 5 or node-redis 5: one hash per
 * record, shared by every app instance on that Redis. Each operation is **one round trip**, a Lua script
 * run with EVALSHA (EVAL once after a server restart emptied the script cache): claim (create,
 * take over an expired lease of the same request with fence + 1, or answer replay / in progress),
 * heartbeat, complete and release are fenced compare-and-sets on the owner token. A new key costs
 * 2 round trips (claim + complete), a replay 1. Lease times come from the Redis server's clock
 * (`TIME` inside the script), never from the app instances'.
 *
 * Retention is the key's own expiry: `complete` sets it to `ttl`, a claim to `max(ttl, lease)`,
 * a heartbeat never lets it end before the lease. Redis deletes expired records itself, so
 * {@link purgeExpired} has nothing to do. Once a record has expired its key starts again at
 * fence 1 (as after a purge in the SQL stores).
 *
 * Outages: while Redis is unreachable every operation fails at once (or within
 * `commandTimeoutMs`) and the request is answered 503 + `Retry-After` without running the handler;
 * once Redis is back the store works again with the same client, no restart needed. After its
 * first successful connection the store sends nothing while the client is not `ready`, so no
 * command waits in the client's offline queue. A claim that timed out on a stalled server may still
 * be applied once the server resumes, and a client you pass in may resend commands that were in
 * flight when the connection dropped (ioredis `autoResendUnfulfilledCommands`, on by default):
 * such a claim holds its key "in progress" for one lease at most; it never runs a handler twice.
 *
 * Redis must not evict these keys: use `maxmemory-policy noeviction` (or a `volatile-*` policy
 * with room to spare), because an evicted in-progress record lets a duplicate run the handler
 * again. The store reads the policy when it first connects (at start-up when Redis is reachable
 * then, else before its first operation): `allkeys-*` is refused with the fix named (unless
 * `allowEvictingPolicy`), `volatile-*` logs a warning, and a server that refuses `CONFIG GET` needs
 * the `maxmemoryPolicy` option. No transactions, hence no `runInTransaction` (`@Idempotent({ transactional: true })`
 * needs `TypeOrmIdempotencyStore`).
 * @example
 * // with the ioredis client your app already has, its connection errors observed by the app
 * const redis = new Redis(process.env.REDIS_URL!, { enableOfflineQueue: false });
 * redis.on('error', (error) => logger.warn(`Redis: ${error.message}`));
 * ResilienceModule.forRoot({ idempotency: { store: new RedisIdempotencyStore({ client: redis }) } });
 * @example
 * // with a node-redis client: the same store, less CPU per command. node-redis ends the process
 * // at the first connection error that has no 'error' listener.
 * const redis = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
 * redis.on('error', (error) => logger.warn(`Redis: ${error.message}`));
 * await redis.connect();
 * ResilienceModule.forRoot({ idempotency: { store: new RedisIdempotencyStore({ client: redis }) } });
 * @example
 * // the store opens and closes its own connection (ioredis)
 * ResilienceModule.forRoot({ idempotency: { store: new RedisIdempotencyStore({ url: 'redis://localhost:6379' }) } });
 * @publicApi
 */
export class RedisIdempotencyStore<C extends RedisStoreClient = Redis | Cluster> implements IdempotencyStore, OnModuleInit, OnApplicationShutdown {
  /** The client in use (yours, or the ioredis client the store opened from `url`). */
  readonly client: C;
  /** The prefix of every record key. */
  readonly keyPrefix: string;
  private readonly commandTimeoutMs: number;
  /** The ioredis client the store opened from `url` (and closes), if it did. */
  private readonly ownClient: Redis | undefined;
  private readonly connection: ScriptConnection;
  private readonly deadlines = new DeadlineQueue(systemClock);
  /** Set once the client has been `ready`: from then on a client that is not ready means an outage. */
  private connectedOnce: boolean;
  private readonly eviction: EvictionPolicyOptions;
  /** Set once the server's eviction policy was read and accepted: until then every operation checks it first. */
  private evictionChecked = false;
  /** The check in flight (shared by the operations waiting for it). */
  private evictionCheck: Promise<void> | undefined;
  /** Set when the server's eviction policy was refused: every operation fails with it (503). */
  private evictionRefusal: ResilienceConfigError | undefined;

  constructor(options: RedisIdempotencyStoreOptions<C>) {
    const { client, url } = options ?? {};
    if ((client === undefined) === (url === undefined)) {
      throw new ResilienceConfigError(
        `RedisIdempotencyStore needs exactly one of \`client\` (an ioredis Redis or Cluster, or a node-redis client) and \`url\` (redis://host:port), but got ${client === undefined ? 'neither' : 'both'}; pass one of them, e.g. new RedisIdempotencyStore({ url: process.env.REDIS_URL }).`,
      );
    }
    this.commandTimeoutMs = positiveInteger('RedisIdempotencyStore', 'commandTimeoutMs', options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, 1000);
    this.eviction = {
      allowEvictingPolicy: options.allowEvictingPolicy === true,
      maxmemoryPolicy: validateDeclaredPolicy('RedisIdempotencyStore', options.maxmemoryPolicy),
    };
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (typeof this.keyPrefix !== 'string') {
      throw new ResilienceConfigError(`RedisIdempotencyStore: keyPrefix must be a string (got ${typeof this.keyPrefix}); use e.g. 'idempotency:my-app:'.`);
    }
    this.ownClient = client === undefined ? ownedClient(url!, this.commandTimeoutMs) : undefined;
    this.client = client ?? (this.ownClient as C);
    // also listens to the client's 'error' events (yours or its own): an outage answers 503, never a crash
    this.connection = scriptConnectionOf(this.client, 'RedisIdempotencyStore');
    this.connectedOnce = this.connection.status === 'ready';
    if (!this.connectedOnce) this.connection.onceReady(() => (this.connectedOnce = true));
  }

  async claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    const recordId = recordIdOf(claim.namespace, claim.scope, claim.key);
    const owner = randomUUID();
    const reply = (await this.run(IDEMPOTENCY_SCRIPTS.claim, recordId, [
      claim.fingerprint,
      owner,
      Math.ceil(claim.leaseMs),
      Math.ceil(claim.ttlMs),
      claim.method.slice(0, 10),
      claim.path.slice(0, 2048),
    ])) as [string, number, string | number];
    const [state, first, second] = reply;
    if (state === 'acquired') return { state, lease: { recordId, owner, fence: Number(first) }, takeover: Number(second) === 1 };
    if (state === 'completed') return { state, sameRequest: Number(first) === 1, response: parseResponse(String(second)) };
    return { state: 'in_progress', sameRequest: Number(first) === 1, retryAfterMs: Number(second) };
  }

  async heartbeat(lease: IdempotencyLease, leaseMs: number): Promise<boolean> {
    return (await this.run(IDEMPOTENCY_SCRIPTS.heartbeat, lease.recordId, [lease.owner, Math.ceil(leaseMs)])) === 1;
  }

  async complete(lease: IdempotencyLease, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const stored = JSON.stringify([response.status, response.headers ?? {}, response.body, response.bodyEncoding]);
    return (await this.run(IDEMPOTENCY_SCRIPTS.complete, lease.recordId, [lease.owner, Math.ceil(ttlMs), stored])) === 1;
  }

  async release(lease: IdempotencyLease): Promise<boolean> {
    return (await this.run(IDEMPOTENCY_SCRIPTS.release, lease.recordId, [lease.owner])) === 1;
  }

  /**
   * Always 0: records carry their retention as the key's expiry, and Redis deletes expired keys by
   * itself (lazily on access, and in its background expire cycle). Nothing to purge or schedule.
   */
  async purgeExpired(): Promise<number> {
    return 0;
  }

  /** PING, bounded by `commandTimeoutMs`. */
  async ping(): Promise<void> {
    await this.bounded(() => this.connection.ping());
  }

  /**
   * Starts the store-owned connection and checks the server's `maxmemory-policy`: a policy that may
   * evict in-progress records stops the application here, with the fix named. When Redis does not
   * answer within `commandTimeoutMs` the app starts anyway (503s until Redis is reachable) and the
   * policy is checked before the first operation.
   */
  async onModuleInit(): Promise<void> {
    if (this.ownClient) this.connection.connectIfIdle();
    try {
      await this.bounded(() => this.checkEviction());
    } catch (error) {
      if (error instanceof ResilienceConfigError) throw error;
    }
  }

  /** Closes the connection the store opened from `url` (QUIT, cut after 1 s); a client you passed in is left open. */
  async onApplicationShutdown(): Promise<void> {
    const client = this.ownClient;
    if (!client || client.status === 'end') return;
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<void>((resolve) => {
      client.once('end', resolve);
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    if (client.status === 'ready') client.quit().catch(() => client.disconnect());
    else client.disconnect();
    if ((client.status as string) !== 'end') await ended;
    clearTimeout(timer);
    if ((client.status as string) !== 'end') client.disconnect();
  }

  /** One script call on the record's key: EVALSHA, and EVAL when the server does not know the script. */
  private run(script: RedisScript, recordId: string, args: Array<string | number>): Promise<unknown> {
    const key = this.keyPrefix + recordId;
    const keys = [key];
    return this.bounded(() => this.connection.evalsha(script.sha, keys, args), () => this.connection.eval(script.lua, keys, args));
  }

  /**
   * Runs `command` once the client can take it, failing within `commandTimeoutMs`: before the
   * first connection it waits for `ready` (start-up); after it, a client that is not `ready` is an
   * outage and fails at once, so nothing queues in the client to run late. `onNoScript` is sent
   * instead when the server answers NOSCRIPT, within the same deadline.
   */
  private bounded<T>(command: () => Promise<T>, onNoScript?: () => Promise<T>): Promise<T> {
    const { connection } = this;
    if (this.evictionChecked && connection.status === 'ready') return this.within(this.commandTimeoutMs, command, onNoScript);
    if (this.evictionRefusal !== undefined) return Promise.reject(this.evictionRefusal);
    // the first operations wait for the eviction policy check, within the same deadline
    const checked = this.evictionChecked ? command : () => this.checkEviction().then(command);
    if (connection.status === 'ready') return this.within(this.commandTimeoutMs, checked, onNoScript);
    if (this.connectedOnce || connection.ended) return Promise.reject(new RedisStoreUnavailableError(connection.status, undefined, connection.lastError));
    const started = performance.now();
    return this.firstConnection(this.commandTimeoutMs).then(() =>
      this.within(Math.max(1, Math.ceil(this.commandTimeoutMs - (performance.now() - started))), checked, onNoScript),
    );
  }

  /** Reads and judges the server's `maxmemory-policy` once (again after a failed read). */
  private checkEviction(): Promise<void> {
    if (this.evictionChecked) return Promise.resolve();
    if (this.evictionRefusal !== undefined) return Promise.reject(this.evictionRefusal);
    return (this.evictionCheck ??= checkEvictionPolicy(this.connection, this.eviction, 'RedisIdempotencyStore').then(
      (verdict) => {
        this.evictionChecked = true;
        this.evictionCheck = undefined;
        if (verdict.warning !== undefined) new Logger('RedisIdempotencyStore').warn(verdict.warning);
      },
      (error: unknown) => {
        this.evictionCheck = undefined;
        if (error instanceof ResilienceConfigError) this.evictionRefusal = error;
        throw error;
      },
    ));
  }

  /**
   * `command()`, rejected with a timeout after `ms`. The deadlines of every command in flight share
   * one timer: a command costs a Set insert and delete, not a timer of its own.
   */
  private within<T>(ms: number, command: () => Promise<T>, onNoScript?: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = this.deadlines.schedule(this.timedOut, ms, reject);
      const answered = (value: T) => {
        this.deadlines.cancel(deadline);
        resolve(value);
      };
      const failed = (error: unknown) => {
        this.deadlines.cancel(deadline);
        reject(error);
      };
      command().then(answered, (error: unknown) => {
        if (onNoScript !== undefined && isNoScript(error)) onNoScript().then(answered, failed);
        else failed(error);
      });
    });
  }

  private readonly timedOut = (reject: (error: unknown) => void): void => reject(new RedisStoreTimeoutError(this.commandTimeoutMs));

  /** Waits up to `timeoutMs` for the client's first `ready` (connecting it when it is lazy). */
  private firstConnection(timeoutMs: number): Promise<void> {
    const { connection } = this;
    connection.connectIfIdle();
    return new Promise<void>((resolve, reject) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        connection.offReady(onReady);
        reject(new RedisStoreUnavailableError(connection.status, timeoutMs, connection.lastError));
      }, timeoutMs);
      connection.onceReady(onReady);
    });
  }
}

/** The store's own connection: fails fast while Redis is down and reconnects by itself. */
function ownedClient(url: string, commandTimeoutMs: number): Redis {
  return new (loadIoredis().Redis)(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    // in-flight commands fail when the connection drops, instead of being resent later
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: Math.max(commandTimeoutMs, 1_000),
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), MAX_RECONNECT_DELAY_MS),
    connectionName: 'nest-resilience:idempotency',
    // commands of concurrent requests leave in one write (one system call) per event-loop turn
    enableAutoPipelining: true,
  });
}

function parseResponse(stored: string): StoredResponse {
  const [status, headers, body, bodyEncoding] = JSON.parse(stored) as [number, Record<string, string>, string | null, StoredResponse['bodyEncoding']];
  return { status, headers, body, bodyEncoding };
}

/** ioredis, loaded only for a `url`: an app that passes a node-redis client need not install it. */
function loadIoredis(): typeof import('ioredis') {
  try {
    return createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  } catch (error) {
    throw new ResilienceConfigError(
      `RedisIdempotencyStore({ url }) opens its connection with ioredis, which could not be loaded (${(error as Error).message.split('\n')[0]}); install it (npm install ioredis), or pass a client you created: new RedisIdempotencyStore({ client }).`,
    );
  }
}
