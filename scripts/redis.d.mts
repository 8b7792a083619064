/** A throwaway Redis server started by {@link startRedis}. */
export interface ThrowawayRedis {
  readonly port: number;
  readonly dir: string;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Starts the server again after `halt()` or `kill()`, on the same port (with no data: nothing is persisted). */
  start(): Promise<void>;
  /** Stops the server (SIGTERM), to simulate an outage. */
  halt(): Promise<void>;
  /** Kills the server (SIGKILL). */
  kill(): Promise<void>;
  /** Stops the server and deletes its directory. */
  stop(): Promise<void>;
}

/** Path of `redis-server` (or `valkey-server`), or undefined when neither is installed. */
export function findRedisServer(): string | undefined;
/**
 * Starts a fresh server on a free loopback port (default) in a temp dir, persisting nothing;
 * `args` are extra server options (`['--maxmemory-policy', 'allkeys-lru']`).
 */
export function startRedis(options?: { bin?: string; port?: number; args?: readonly string[] }): Promise<ThrowawayRedis>;
