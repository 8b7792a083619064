/** A throwaway PostgreSQL server started by {@link startPostgres}. */
export interface ThrowawayPostgres {
  readonly port: number;
  readonly dir: string;
  /** Connection URL of the `postgres` database (trust auth, user postgres). */
  readonly url: string;
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
}

/** Directory holding initdb/pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPostgresBin(): string | undefined;
/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number>;
/**
 * Starts a fresh server on a free loopback port (initdb + pg_ctl in a temp dir). `durable: true`
 * keeps fsync, synchronous_commit and full_page_writes on (default: off, for speed).
 */
export function startPostgres(options?: { bin?: string; port?: number; durable?: boolean }): Promise<ThrowawayPostgres>;
