/**
 * Why the idempotency store could not do it now. Each kind is answered 503 with its own `code`,
 * so operators can tell "database down" from "pool too small" from "lock contention":
 * - `unavailable`: the database refused, dropped or never answered the connection
 *   (`ECONNREFUSED`, `ECONNRESET`, SQLSTATE class 08, `57P01`–`57P03`, a connection timeout;
 *   Redis: ioredis' closed-connection, offline-queue and max-retries errors, node-redis'
 *   closed-socket, offline and closed-client errors, a server that is `LOADING`, `BUSY` with a
 *   script, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` after a failover or out of memory (`OOM`));
 * - `pool_exhausted`: no connection was free in time (the pool's checkout timeout, or the
 *   server's connection limit `53300`; SQLite: the store's queue for its one connection is full);
 * - `timeout`: a lock or statement waited too long or lost a race (`55P03`, `57014`, `40P01`,
 *   `40001`, the driver's query timeout, SQLite busy or locked past the store's `lockTimeout`; Redis: a command that timed out,
 *   `TRYAGAIN` during resharding);
 * - `full`: a bounded store has no room for a new key without dropping a request still in
 *   progress ({@link IdempotencyStoreFullError}, the in-memory store's `maxRecords` / `maxBytes`).
 * @publicApi
 */
export type StoreFailure = 'unavailable' | 'pool_exhausted' | 'timeout' | 'full';

/**
 * A bounded store cannot take a new key now: every record it could drop is a request still in
 * progress (the in-memory store evicts completed records only). Classified as `full` by
 * {@link storeFailureOf}: the request is answered 503 `idempotency_store_full` with `Retry-After`,
 * without running the handler.
 * @example
 * storeFailureOf(new IdempotencyStoreFullError('maxRecords (50000) records are in progress')); // 'full'
 * @publicApi
 */
export class IdempotencyStoreFullError extends Error {
  /** Stable code, recognised by `storeFailureOf`. */
  readonly code = 'ERR_IDEMPOTENCY_STORE_FULL';
  /** @param reason what is full, e.g. "all 50000 records (maxRecords) are requests in progress" */
  constructor(readonly reason: string) {
    super(`The idempotency store is full: ${reason}, and those are never evicted; the key was not claimed.`);
    this.name = 'IdempotencyStoreFullError';
  }
}

const FAILURE_BY_CODE: ReadonlyMap<string, StoreFailure> = new Map([
  ['ECONNREFUSED', 'unavailable'],
  ['ECONNRESET', 'unavailable'],
  ['EPIPE', 'unavailable'],
  ['ETIMEDOUT', 'unavailable'],
  ['EHOSTUNREACH', 'unavailable'],
  ['ENOTFOUND', 'unavailable'],
  // PostgreSQL: admin shutdown, crash shutdown, cannot connect now
  ['57P01', 'unavailable'],
  ['57P02', 'unavailable'],
  ['57P03', 'unavailable'],
  ['53300', 'pool_exhausted'],
  // PostgreSQL: lock not available, statement timeout, deadlock, serialization failure
  ['55P03', 'timeout'],
  ['57014', 'timeout'],
  ['40P01', 'timeout'],
  ['40001', 'timeout'],
  ['SQLITE_BUSY', 'timeout'],
  ['SQLITE_LOCKED', 'timeout'],
  // RedisIdempotencyStore's own errors (nest-resilience/redis)
  ['ERR_REDIS_STORE_UNAVAILABLE', 'unavailable'],
  ['ERR_REDIS_STORE_TIMEOUT', 'timeout'],
  // TypeOrmIdempotencyStore on SQLite (nest-resilience/typeorm): the write lock's wait, the queue's bound
  ['ERR_SQLITE_LOCK_TIMEOUT', 'timeout'],
  ['ERR_SQLITE_STORE_QUEUE_FULL', 'pool_exhausted'],
  ['ERR_IDEMPOTENCY_STORE_FULL', 'full'],
]);

/** Messages of errors that carry no code (node-postgres, pg-pool, ioredis, node-redis and Redis error replies). */
const FAILURE_BY_MESSAGE: ReadonlyArray<readonly [RegExp, StoreFailure]> = [
  [/^timeout exceeded when trying to connect/, 'pool_exhausted'],
  [/^Query read timeout/, 'timeout'],
  [/^Connection terminated|^Client has encountered a connection error/, 'unavailable'],
  // ioredis: closed or reconnecting connection, offline queue disabled, retries used up, cluster down
  [/^Connection is closed\.|^Stream isn't writeable|^Reached the max retries per request limit|^None of startup nodes is available|^Failed to refresh slots cache/, 'unavailable'],
  // node-redis: the socket dropped under a command, the client is reconnecting (offline queue off) or closed
  [/^Socket closed unexpectedly|^The client is offline|^The client is closed|^Connection timeout/, 'unavailable'],
  [/^Command timed out/, 'timeout'],
  // Redis error replies (ioredis ReplyError): the server is up but cannot serve writes right now
  [/^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|READONLY|OOM) /, 'unavailable'],
  [/^TRYAGAIN /, 'timeout'],
];

/** How deep `cause` chains are followed. */
const MAX_CAUSE_DEPTH = 5;

/**
 * Classifies a store error as one of the {@link StoreFailure} kinds, following TypeORM's
 * `driverError` and `cause`; `undefined` when it is none of them (a bug, a constraint, …).
 * @example
 * storeFailureOf(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' })); // 'timeout'
 * @publicApi
 */
export function storeFailureOf(error: unknown, depth = 0): StoreFailure | undefined {
  if (typeof error !== 'object' || error === null || depth > MAX_CAUSE_DEPTH) return undefined;
  const object = error as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown; driverError?: unknown };
  if (object.name === 'MaxRetriesPerRequestError') return 'unavailable';
  if (typeof object.code === 'string') {
    const code = object.code;
    if (code === 'ERR_IDEMPOTENCY_COMMIT_OUTCOME_UNKNOWN') return storeFailureOf(object.cause, depth + 1) ?? 'unavailable';
    const known = FAILURE_BY_CODE.get(code) ?? (/^08[0-9A-Z]{3}$/.test(code) ? 'unavailable' : /^SQLITE_(BUSY|LOCKED)_/.test(code) ? 'timeout' : undefined);
    if (known) return known;
  }
  if (typeof object.message === 'string') {
    for (const [pattern, failure] of FAILURE_BY_MESSAGE) if (pattern.test(object.message)) return failure;
  }
  return storeFailureOf(object.driverError, depth + 1) ?? storeFailureOf(object.cause, depth + 1);
}

/**
 * Whether `error` means "the store (database) could not do it now, try again": any
 * {@link StoreFailure}.
 * @publicApi
 */
export function isStoreUnavailableError(error: unknown): boolean {
  return storeFailureOf(error) !== undefined;
}

/**
 * Thrown by a store's `runInTransaction` when it sent COMMIT and got no answer (a timeout, a
 * dropped connection): the transaction may have committed or not, and only the record can tell.
 * The idempotency core answers 503 + `Retry-After` without guessing; the retry with the same key
 * gets the stored response if the commit happened, or runs the handler if it did not. `cause` is
 * the driver's error, so {@link storeFailureOf} classifies it as that failure.
 * @publicApi
 */
export class CommitOutcomeUnknownError extends Error {
  /** Stable code, recognised by {@link isCommitOutcomeUnknown}. */
  readonly code = 'ERR_IDEMPOTENCY_COMMIT_OUTCOME_UNKNOWN';

  constructor(cause: unknown) {
    super(`COMMIT was sent but not answered (${cause instanceof Error ? cause.message : String(cause)}); whether the transaction committed is known only to the database.`, { cause });
    this.name = 'CommitOutcomeUnknownError';
  }
}

/**
 * Whether `error` is a {@link CommitOutcomeUnknownError} (also across duplicated module copies).
 * @publicApi
 */
export function isCommitOutcomeUnknown(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ERR_IDEMPOTENCY_COMMIT_OUTCOME_UNKNOWN';
}
