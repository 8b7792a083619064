/** A throwaway Redis server started by {@link startRedis}. */
export interface ThrowawayRedis {
  readonly port: number;
  readonly dir: string;
  /** `redis://<bind address>:<port>` */
  readonly url: string;
  /** Path of the server's Unix socket (in `dir`): reachable from outside its network namespace. */
  readonly socket: string;
  /** Starts the server again after `halt()` or `kill()`, on the same port (with no data: nothing is persisted). */
  start(): Promise<void>;
  /** Stops the server (SIGTERM), to simulate an outage. */
  halt(): Promise<void>;
  /** Kills the server (SIGKILL). */
  kill(): Promise<void>;
  /** Stops the server and deletes its directory. */
  stop(): Promise<void>;
  /** Stops the server process with SIGSTOP: it hangs with its connections open. Returns its pid. */
  freeze(): number[];
  /** Resumes it (SIGCONT) after `freeze()`. */
  thaw(): void;
}

/** Path of `redis-server` (or `valkey-server`), or undefined when neither is installed. */
export function findRedisServer(): string | undefined;
/**
 * Starts a fresh server on a free loopback port (default) in a temp dir, persisting nothing;
 * `args` are extra server options (`['--maxmemory-policy', 'allkeys-lru']`).
 */
export function startRedis(options?: {
  bin?: string;
  port?: number;
  /** Run the server inside this network namespace (root only). */
  netns?: string;
  /** `--bind`. @default '127.0.0.1' */
  bindAddress?: string;
  /** Extra server options. */
  args?: readonly string[];
}): Promise<ThrowawayRedis>;
