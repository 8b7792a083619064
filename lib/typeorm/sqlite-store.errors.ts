/**
 * A `TypeOrmIdempotencyStore` operation on SQLite did not get the database's write lock within the
 * store's `lockTimeout`: another connection or process held it (a long write transaction, a
 * migration, a backup), or this process's queue for its one connection was that long. The store
 * waited without blocking the event loop and gave up. Classified as `timeout` by `storeFailureOf`
 * (503 `idempotency_store_timeout` with `Retry-After`); nothing was written. `cause` is SQLite's
 * last `SQLITE_BUSY`, when there was one.
 * @example
 * storeFailureOf(new SqliteLockTimeoutError(5_000, 'lock')); // 'timeout'
 * @publicApi
 */
export class SqliteLockTimeoutError extends Error {
  /** Stable code, recognised by `storeFailureOf`. */
  readonly code = 'ERR_SQLITE_LOCK_TIMEOUT';
  /**
   * @param timeoutMs the store's `lockTimeout`
   * @param waitedFor `lock`: SQLite answered busy until the deadline; `queue`: the operation was
   *   still queued behind this store's other operations at its deadline
   * @param cause SQLite's last `SQLITE_BUSY` error
   */
  constructor(
    readonly timeoutMs: number,
    readonly waitedFor: 'lock' | 'queue',
    cause?: unknown,
  ) {
    super(
      waitedFor === 'lock'
        ? `The SQLite database stayed locked by another connection for the store's lockTimeout (${timeoutMs} ms), so the store's operation was not done; look for long write transactions on the database file (another process, a migration, a backup) or raise lockTimeout.`
        : `The store's operation waited ${timeoutMs} ms (its lockTimeout) in the queue of the one SQLite connection, behind operations that waited for the database's write lock or a long transactional request; it was not done.`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'SqliteLockTimeoutError';
  }
}

/**
 * A `TypeOrmIdempotencyStore` on SQLite already has `maxQueuedOperations` operations waiting for its
 * one connection (the database's write lock is held elsewhere, or traffic outruns it): the
 * operation is refused at once instead of queueing more. Classified as `pool_exhausted` by
 * `storeFailureOf` (503 `idempotency_store_pool_exhausted` with `Retry-After`); nothing was written.
 * @example
 * storeFailureOf(new SqliteStoreQueueFullError(1_000)); // 'pool_exhausted'
 * @publicApi
 */
export class SqliteStoreQueueFullError extends Error {
  /** Stable code, recognised by `storeFailureOf`. */
  readonly code = 'ERR_SQLITE_STORE_QUEUE_FULL';
  /** @param maxQueued the store's `maxQueuedOperations` */
  constructor(readonly maxQueued: number) {
    super(
      `${maxQueued} operations (the store's maxQueuedOperations) are already waiting for the SQLite connection, so this one was refused without waiting; look for what holds the database's write lock, or cap the concurrency of idempotent routes with @Bulkhead().`,
    );
    this.name = 'SqliteStoreQueueFullError';
  }
}
