/**
 * Redis could not take the command: the connection is down (or not made yet). Classified as
 * `unavailable` by `storeFailureOf`, so an idempotent request is answered 503
 * `idempotency_store_unavailable` with `Retry-After`.
 * @example
 * storeFailureOf(new RedisStoreUnavailableError('reconnecting')); // 'unavailable'
 * @publicApi
 */
export class RedisStoreUnavailableError extends Error {
  /** Stable code, recognised by `storeFailureOf`. */
  readonly code = 'ERR_REDIS_STORE_UNAVAILABLE';
  /**
   * @param status the client's connection status at that moment (ioredis: `reconnecting`, `connecting`, `end`…; node-redis: `reconnecting`, `closed`)
   * @param waitedMs how long the store waited for the first connection, if it did
   * @param lastError the newest connection error the client reported (`Name: message`), if any
   */
  constructor(
    readonly status: string,
    waitedMs?: number,
    readonly lastError?: string,
  ) {
    const reported = lastError === undefined ? '' : `; the client's last connection error: ${lastError}`;
    super(
      waitedMs === undefined
        ? `Redis is not connected (connection status "${status}"${reported}), so the command was not sent; the client reconnects by itself and the request can be retried then.`
        : `Redis did not become ready within ${waitedMs} ms (connection status "${status}"${reported}); check that it is reachable at the configured address (a node-redis client must also have been connected: await client.connect()).`,
    );
    this.name = 'RedisStoreUnavailableError';
  }
}

/**
 * Redis did not answer within the store's `commandTimeoutMs`. Classified as `timeout` by
 * `storeFailureOf` (503 `idempotency_store_timeout`).
 * @example
 * storeFailureOf(new RedisStoreTimeoutError(1_000)); // 'timeout'
 * @publicApi
 */
export class RedisStoreTimeoutError extends Error {
  /** Stable code, recognised by `storeFailureOf`. */
  readonly code = 'ERR_REDIS_STORE_TIMEOUT';
  /** @param timeoutMs the store's `commandTimeoutMs` */
  constructor(readonly timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms (the store's commandTimeoutMs); look for a slow or blocked server (SLOWLOG, long scripts) or raise commandTimeoutMs.`);
    this.name = 'RedisStoreTimeoutError';
  }
}
