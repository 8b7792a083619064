/** A throwaway PostgreSQL server started by {@link startPostgres}. */
export interface ThrowawayPostgres {
  readonly port: number;
  readonly dir: string;
  /** Connection URL of the `postgres` database (trust auth, user postgres), over TCP on the listen address. */
  readonly url: string;
  /** The same database over the server's Unix socket (in `dir`): reachable from outside its network namespace, and no network fault touches it. */
  readonly socketUrl: string;
  /** Whether it runs with fsync, synchronous_commit and full_page_writes on (acknowledged commits survive `crash()`). */
  readonly durable: boolean;
  /** Starts the server again after `halt()`, with its data. */
  start(): void;
  /** Stops the server (fast shutdown) and keeps its data, to simulate an outage. */
  halt(): void;
  /**
   * Stops the server with `pg_ctl stop -m immediate` (no checkpoint: the next start recovers from
   * the WAL). Leaves the event loop free while pg_ctl runs.
   */
  crash(): Promise<void>;
  /** Starts the server again after `crash()` or `halt()`, leaving the event loop free while pg_ctl runs. */
  restart(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  stop(): void;
  /** The postmaster's pid (from its postmaster.pid) and its children's (backends, checkpointer, WAL writer, …). */
  pids(): number[];
  /** Stops every process of this server with SIGSTOP, postmaster first: it hangs with its connections open. Returns the pids stopped. */
  freeze(): number[];
  /** Resumes the processes `freeze()` stopped (SIGCONT). */
  thaw(): void;
}

/** Pids of the processes whose parent is `parent` (read from /proc). */
export function childPids(parent: number): number[];
/** Stops (SIGSTOP) the pids `list()` returns, repeating until no new one appears; returns those stopped. */
export function freezePids(list: () => number[]): number[];
/** Resumes (SIGCONT) the given pids. */
export function thawPids(pids: readonly number[]): void;

/** Directory holding initdb/pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPostgresBin(): string | undefined;
/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number>;
/**
 * Starts a fresh server on a free loopback port (initdb + pg_ctl in a temp dir). `durable: true`
 * keeps fsync, synchronous_commit and full_page_writes on (default: off, for speed).
 */
export function startPostgres(options?: {
  bin?: string;
  port?: number;
  durable?: boolean;
  /** Run the server inside this network namespace (root only). */
  netns?: string;
  /** `listen_addresses`. @default '127.0.0.1' */
  listenAddress?: string;
}): Promise<ThrowawayPostgres>;
