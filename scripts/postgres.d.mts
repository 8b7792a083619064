/** A throwaway PostgreSQL server started by {@link startPostgres}. */
export interface ThrowawayPostgres {
  readonly port: number;
  readonly dir: string;
  /** Connection URL of the `postgres` database (trust auth, user postgres). */
  readonly url: string;
  /** Starts the server again after `halt()`, with its data. */
  start(): void;
  /** Stops the server (fast shutdown) and keeps its data, to simulate an outage. */
  halt(): void;
  /** Stops the server and deletes its data directory. */
  stop(): void;
}

/** Directory holding initdb/pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPostgresBin(): string | undefined;
/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number>;
/** Starts a fresh server on a free loopback port (initdb + pg_ctl in a temp dir). */
export function startPostgres(options?: { bin?: string; port?: number }): Promise<ThrowawayPostgres>;
