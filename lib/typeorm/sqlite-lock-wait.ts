/**
 * How `TypeOrmIdempotencyStore` waits for SQLite's write lock without blocking the event loop.
 *
 * better-sqlite3 waits for a locked database (`busy_timeout`) synchronously: the whole process
 * stops until the lock frees or the timeout ends. So the store runs its own statements with
 * `busy_timeout` 0 (SQLite answers `SQLITE_BUSY` at once), retries them after short jittered
 * sleeps on the clock until the operation's deadline, then gives up with
 * {@link SqliteLockTimeoutError}. TypeORM shares one connection, so the store's operations run one
 * at a time ({@link SqliteOperationQueue}); each one's deadline counts from when it was queued, and
 * the queue is bounded.
 * @internal
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Random } from '../core/random.js';
import { SqliteLockTimeoutError, SqliteStoreQueueFullError } from './sqlite-store.errors.js';

/** First sleep after `SQLITE_BUSY`, ms (SQLite's own busy handler starts at 1 ms). */
const FIRST_BUSY_SLEEP_MS = 1;
/** Longest sleep between tries, ms: once the lock frees, an operation takes it within about this. */
const MAX_BUSY_SLEEP_MS = 20;

/** Whether `error` (or TypeORM's `driverError` under it) is SQLite's busy or locked answer. */
export function isSqliteBusy(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, driverError } = error as { code?: unknown; driverError?: unknown };
  if (typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code)) return true;
  return driverError !== undefined && isSqliteBusy(driverError);
}

/**
 * The sleep before try `tries + 1` after `SQLITE_BUSY`: doubling from 1 ms up to 20 ms, each drawn in
 * [half, whole] so processes polling one file do not stay in step.
 */
export function busySleepMs(tries: number, random: Random): number {
  const ceiling = Math.min(MAX_BUSY_SLEEP_MS, FIRST_BUSY_SLEEP_MS * 2 ** Math.min(tries, 16));
  return ceiling / 2 + (random.next() * ceiling) / 2;
}

/** Sleeps on `clock`. */
function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/**
 * Runs `attempt` until it does not fail with `SQLITE_BUSY`, sleeping {@link busySleepMs} between
 * tries (never past `deadline`); at the deadline throws {@link SqliteLockTimeoutError} with the last
 * busy error as its cause. `beforeRetry` runs before each sleep (to roll back a transaction).
 */
export async function retryWhileBusy<T>(
  attempt: () => Promise<T>,
  deadline: number,
  wait: { readonly clock: Clock; readonly random: Random; readonly lockTimeout: number },
  beforeRetry?: () => Promise<void>,
): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isSqliteBusy(error)) throw error;
      await beforeRetry?.();
      const left = deadline - wait.clock.now();
      if (left <= 0) throw new SqliteLockTimeoutError(wait.lockTimeout, 'lock', error);
      await sleep(wait.clock, Math.min(left, busySleepMs(tries, wait.random)));
    }
  }
}

interface Waiter {
  readonly operation: (deadline: number) => Promise<unknown>;
  readonly deadline: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: TimerHandle | undefined;
  /** Started, or refused at its deadline. */
  settled: boolean;
}

/**
 * Runs one operation at a time, each given its deadline (`lockTimeout` after it was queued). One
 * still queued at its deadline is refused ({@link SqliteLockTimeoutError}, `queue`) without running;
 * one queued while `maxQueued` others wait is refused at once ({@link SqliteStoreQueueFullError}).
 * Memory: one entry per waiting operation, at most `maxQueued`.
 */
export class SqliteOperationQueue {
  private running = false;
  private readonly waiters: Array<Waiter | undefined> = [];
  private head = 0;
  private waiting = 0;

  constructor(
    private readonly clock: Clock,
    private readonly lockTimeout: number,
    private readonly maxQueued: number,
  ) {}

  run<T>(operation: (deadline: number) => Promise<T>): Promise<T> {
    const deadline = this.clock.now() + this.lockTimeout;
    if (!this.running) {
      this.running = true;
      return this.start(operation, deadline);
    }
    if (this.waiting >= this.maxQueued) return Promise.reject(new SqliteStoreQueueFullError(this.maxQueued));
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { operation, deadline, resolve: resolve as (value: unknown) => void, reject, timer: undefined, settled: false };
      waiter.timer = this.clock.setTimeout(() => {
        if (waiter.settled) return;
        waiter.settled = true;
        this.waiting--;
        reject(new SqliteLockTimeoutError(this.lockTimeout, 'queue'));
      }, this.lockTimeout);
      this.waiters.push(waiter);
      this.waiting++;
    });
  }

  private start<T>(operation: (deadline: number) => Promise<T>, deadline: number): Promise<T> {
    let result: Promise<T>;
    try {
      result = operation(deadline);
    } catch (error) {
      result = Promise.reject(error);
    }
    const next = () => this.next();
    result.then(next, next);
    return result;
  }

  private next(): void {
    while (this.head < this.waiters.length) {
      const waiter = this.waiters[this.head]!;
      this.waiters[this.head++] = undefined;
      if (waiter.settled) continue;
      waiter.settled = true;
      this.waiting--;
      this.clock.clearTimeout(waiter.timer);
      this.compact();
      this.start(waiter.operation, waiter.deadline).then(waiter.resolve, waiter.reject);
      return;
    }
    this.waiters.length = 0;
    this.head = 0;
    this.running = false;
  }

  /** Drops the consumed front of the array once it is most of it. */
  private compact(): void {
    if (this.head >= 1_024 && this.head * 2 >= this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** What the store uses of a better-sqlite3 `Statement`. */
interface BetterSqliteStatement {
  readonly reader: boolean;
  all(...parameters: unknown[]): Array<Record<string, unknown>>;
  get(...parameters: unknown[]): unknown;
  run(...parameters: unknown[]): { changes: number };
}

/** What the store uses of a better-sqlite3 `Database`. */
export interface BetterSqliteDatabase {
  prepare(sql: string): BetterSqliteStatement;
}

/** Rows and changed-row count of one statement. */
export interface SqliteResult {
  readonly rows: Array<Record<string, unknown>>;
  readonly affected: number;
}

/**
 * The store's statements on one better-sqlite3 connection, each run with `busy_timeout` 0 and the
 * connection's own value put back at once (all synchronously, so no other statement of the app runs
 * in between and the app's own statements keep the busy timeout it configured). Statements are
 * prepared once per connection.
 */
export class SqliteStatementRunner {
  private readonly statements = new Map<string, BetterSqliteStatement>();

  constructor(readonly database: BetterSqliteDatabase) {}

  /** Runs `sql`; throws SQLite's `SQLITE_BUSY` at once when another connection holds the lock. */
  run(sql: string, parameters: readonly unknown[]): SqliteResult {
    const previous = this.withoutBusyTimeout();
    try {
      const statement = this.statement(sql);
      if (statement.reader) return { rows: statement.all(...parameters), affected: 0 };
      return { rows: [], affected: statement.run(...parameters).changes };
    } finally {
      this.restoreBusyTimeout(previous);
    }
  }

  /**
   * Runs `work` (a statement TypeORM sends, e.g. COMMIT) with `busy_timeout` 0. TypeORM awaits
   * before it sends, so another statement of the app may run meanwhile with 0 too: use it only
   * while the store's transaction is open, when such a statement is part of it and has no lock
   * of another connection to wait for.
   */
  async withoutBusyWait<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.withoutBusyTimeout();
    try {
      return await work();
    } finally {
      this.restoreBusyTimeout(previous);
    }
  }

  /** Sets the connection's `busy_timeout` to 0; returns the value it had (read each time: the app may change it). */
  private withoutBusyTimeout(): number {
    const previous = Number(this.statement('PRAGMA busy_timeout').get() ?? 0);
    if (previous !== 0) this.statement('PRAGMA busy_timeout = 0').get();
    return previous;
  }

  private restoreBusyTimeout(previous: number): void {
    if (previous !== 0) this.statement(`PRAGMA busy_timeout = ${previous}`).get();
  }

  private statement(sql: string): BetterSqliteStatement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.database.prepare(sql);
      // the pragma answers one row of one column: `get()` returns the number itself
      if (sql === 'PRAGMA busy_timeout') (statement as unknown as { pluck(): void }).pluck();
      this.statements.set(sql, statement);
    }
    return statement;
  }
}
