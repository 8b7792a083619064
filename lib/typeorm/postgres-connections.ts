// What the idempotency store knows about node-postgres (behind TypeORM's PostgreSQL driver): its
// pool and client shapes, which failures prove nothing was sent, and opening a connection again
// when opening timed out.
import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { storeFailureOf } from '../core/idempotency/store-failure.js';

/**
 * Opens the store's PostgreSQL connections: an attempt that timed out sent nothing, so it is made
 * again on a new connection within the retry window (see `connectRetryWindow`), and the first
 * retry is reported once.
 */
export class PostgresConnections {
  /** Where a connection that had to be opened again is reported (once per store). */
  private warn?: (message: string) => void;
  private warnedSlowConnect = false;

  constructor(
    private readonly clock: Clock,
    /** `connectRetryWindow` as given (`undefined`: derived from the pool's timeouts). */
    private readonly retryWindow: number | undefined,
  ) {
    if (retryWindow !== undefined && (!Number.isInteger(retryWindow) || retryWindow < 0)) {
      throw new Error(`TypeOrmIdempotencyStore: connectRetryWindow must be a non-negative integer of ms (got ${retryWindow}); e.g. connectRetryWindow: 5_000, or 0 to never open a connection twice.`);
    }
  }

  /** Keeps the application's warning log (the first one given wins). */
  observe(warn: ((message: string) => void) | undefined): void {
    this.warn ??= warn;
  }

  /**
   * One statement on a connection of the pool, as node-postgres' `pool.query` sends it, but with
   * the connection opened first by {@link open}: a failure there is known to have sent nothing.
   * Any failure of the statement discards its connection (what `pool.query` does too).
   */
  async query(pool: PostgresPool, config: { name: string; text: string; values: unknown[] }): Promise<PostgresResult> {
    let failure: Error | undefined;
    // a connection error while checked out has no other listener: unheard, it would crash the process
    const onError = (error: Error) => (failure ??= error);
    const client = await this.open(pool, () => checkOut(pool, onError));
    try {
      return await client.query(config);
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(failure);
    }
  }

  /**
   * Opens a connection with `open`. An attempt that timed out sent nothing (no statement is given
   * to a connection before it is open), so another attempt on a new connection is safe: one is
   * made as long as all attempts' timeouts add up to no more than the connect retry window
   * (`connectRetryWindow`), which keeps the request within the store's documented wait.
   */
  async open<C>(pool: PostgresPool, open: () => Promise<C>): Promise<C> {
    const connectTimeout = positiveOrZero(pool.options?.connectionTimeoutMillis);
    const queryTimeout = positiveOrZero(pool.options?.query_timeout);
    const window = this.retryWindow ?? (queryTimeout > 0 ? Math.max(queryTimeout, connectTimeout) : 2 * connectTimeout);
    const attempts = connectTimeout > 0 ? Math.max(1, Math.floor(window / connectTimeout)) : 1;
    const started = this.clock.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await open();
      } catch (error) {
        if (attempt >= attempts || !isConnectTimeout(error)) throw error;
        this.reportSlowConnect(connectTimeout, this.clock.now() - started, window);
      }
    }
  }

  private reportSlowConnect(connectTimeout: number, waited: number, window: number): void {
    if (this.warnedSlowConnect || !this.warn) return;
    this.warnedSlowConnect = true;
    this.warn(
      `TypeOrmIdempotencyStore: PostgreSQL did not open a new connection within connectTimeoutMS (${connectTimeout} ms; ${Math.round(waited)} ms since the operation started), so the store is trying again on a new one, for up to ${window} ms (connectRetryWindow). A healthy server is slow to accept connections when many are opened at once (a cold pool under a burst, a busy host): open the pool's connections before traffic arrives, lower the pool size or raise connectTimeoutMS. Reported once.`,
    );
  }
}

/**
 * What the store reads of a node-postgres `Client` (internal fields of pg 8, read defensively):
 * whether it still awaits an answer or broke.
 */
export interface PostgresClientState {
  readonly _queryable?: boolean;
  readonly _ending?: boolean;
  readonly _queryQueue?: readonly unknown[];
  _getActiveQuery?(): unknown;
}

/** How deep `cause` chains are followed by {@link isUnanswered}. */
const MAX_CAUSE_DEPTH = 5;

/**
 * Whether `error` (or its `cause` / `driverError`) says a statement got no answer: node-postgres'
 * read timeout (`query_timeout`), or a connection that dropped or was never made.
 */
export function isUnanswered(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > MAX_CAUSE_DEPTH) return false;
  const { message, cause, driverError } = error as { message?: unknown; cause?: unknown; driverError?: unknown };
  if (typeof message === 'string' && message.startsWith('Query read timeout')) return true;
  if (storeFailureOf(error) === 'unavailable' && depth === 0) return true;
  return isUnanswered(driverError, depth + 1) || isUnanswered(cause, depth + 1);
}

/** What a statement of node-postgres answers (the parts the store reads). */
interface PostgresResult {
  readonly rows?: Record<string, unknown>[];
  readonly rowCount?: number | null;
}

/** What the store uses of a connection checked out of node-postgres' `Pool`. */
interface PostgresPoolClient {
  query(config: { name: string; text: string; values: unknown[] }): Promise<PostgresResult>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  /** Back to the pool; with an error, the connection is closed instead. */
  release(error?: Error): void;
}

/** What the store uses of node-postgres' `Pool`: checkout, and the timeouts it was given. */
export interface PostgresPool {
  connect(callback: (error: Error | undefined, client: PostgresPoolClient | undefined) => void): void;
  readonly options?: { readonly connectionTimeoutMillis?: unknown; readonly query_timeout?: unknown };
}

/**
 * Checks a connection out of `pool` with `onError` listening from the moment it is handed over.
 * node-postgres hands a new connection over while it parses the server's ReadyForQuery, and goes on
 * parsing the same network read: a server shutting down sends its FATAL (57P01, terminating
 * connection due to administrator command) in that read, and the client emits it as an 'error'
 * before an awaited `pool.connect()` could resume, with no listener (the pool removes its own on
 * checkout), which crashes the process. The callback runs at the handover itself.
 */
function checkOut(pool: PostgresPool, onError: (error: Error) => void): Promise<PostgresPoolClient> {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error || !client) {
        reject(error ?? new Error('node-postgres checked out no connection'));
        return;
      }
      client.on('error', onError);
      resolve(client);
    });
  });
}

/**
 * Whether a connection attempt failed because it timed out: node-postgres' pool (`Connection
 * terminated due to connection timeout`) or client (`timeout expired`) gave up on it, or the
 * kernel did (`ETIMEDOUT`). Only ever asked about errors of opening a connection.
 */
function isConnectTimeout(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { message, code } = error as { message?: unknown; code?: unknown };
  return code === 'ETIMEDOUT' || (typeof message === 'string' && /^(Connection terminated due to connection timeout|timeout expired)/.test(message));
}

function positiveOrZero(value: unknown): number {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : 0;
}

const statementNames = new Map<string, string>();

/** A stable statement name per SQL text (node-postgres prepares a name once per connection). */
export function statementNameOf(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `nest_resilience_${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`;
    statementNames.set(sql, name);
  }
  return name;
}
