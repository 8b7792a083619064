import { createHash, randomUUID } from 'node:crypto';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  IdempotencyStoreObserver,
  StoredResponse,
  TransactionalOutcome,
  TransactionalResult,
} from '../core/idempotency/idempotency-store.interface.js';
import { systemClock, type Clock } from '../core/clock.js';
import { recordIdOf } from '../core/idempotency/record-id.js';
import { CommitOutcomeUnknownError } from '../core/idempotency/store-failure.js';
import { systemRandom } from '../core/random.js';
import { IDEMPOTENCY_RECORDS_TABLE } from './idempotency-record.entity.js';
import { idempotencyStatements, type IdempotencyStatements, type SqlDialect } from './idempotency-sql.js';
import { isUnanswered, PostgresConnections, statementNameOf, type PostgresClientState, type PostgresPool } from './postgres-connections.js';
import { retryWhileBusy, SqliteOperationQueue, SqliteStatementRunner, type BetterSqliteDatabase } from './sqlite-lock-wait.js';

/**
 * What a database round trip of {@link TypeOrmIdempotencyStore} was for.
 * `begin` / `commit` / `rollback` belong to `runInTransaction`.
 * @publicApi
 */
export type IdempotencyStoreOperation =
  | 'claim'
  | 'read'
  | 'heartbeat'
  | 'complete'
  | 'release'
  | 'purge'
  | 'ping'
  | 'begin'
  | 'commit'
  | 'rollback';

/**
 * One statement sent to the database by {@link TypeOrmIdempotencyStore}.
 * @publicApi
 */
export interface IdempotencyQueryEvent {
  /** Which store operation the statement belongs to. */
  readonly operation: IdempotencyStoreOperation;
  /** The SQL text (parameters are not included: they hold keys). */
  readonly sql: string;
}

/**
 * Options of {@link TypeOrmIdempotencyStore}.
 * @publicApi
 */
export interface TypeOrmIdempotencyStoreOptions {
  /** Table holding the records (`schema.table` allowed on PostgreSQL). @default 'idempotency_records' */
  tableName?: string;
  /**
   * The longest a store operation waits for a lock, ms.
   *
   * PostgreSQL, transactional mode: the longest a claim inside `runInTransaction` waits for a row
   * lock (`SET LOCAL lock_timeout`) before it is answered "in progress" (409). A safety net only:
   * a duplicate of a transactional run still in flight is answered at once (advisory lock); this
   * bounds the rarer waits, e.g. on a lease-mode claim of the same key being written, or on a lock
   * your own code holds on the record.
   *
   * SQLite, every operation: the longest it waits for the database's write lock (held by another
   * connection or process), counted from when it was queued behind this store's other operations,
   * before it fails with `SqliteLockTimeoutError` (503 `idempotency_store_timeout`, nothing written).
   * The store never lets better-sqlite3 busy-wait (which blocks the event loop): its statements run
   * with `busy_timeout` 0 and are retried after 1–20 ms sleeps. A `COMMIT` refused for busy readers
   * (rollback-journal mode) gets `lockTimeout` of its own, then the transaction is rolled back.
   * @default 5_000
   */
  lockTimeout?: number;
  /**
   * SQLite: how many operations may wait for the store's one connection (behind one that waits for
   * the write lock, or a transactional request in progress); one more is refused at once with
   * `SqliteStoreQueueFullError` (503 `idempotency_store_pool_exhausted`). Ignored on PostgreSQL,
   * where the pool's own checkout timeout bounds the wait.
   * @default 1_000
   */
  maxQueuedOperations?: number;
  /**
   * The clock of the store's own waits (SQLite's lock-wait deadlines and sleeps); records are timed
   * by the database clock whatever it is. Tests pass the `FakeClock` of `nest-resilience/testing`.
   * @default systemClock
   */
  clock?: Clock;
  /** Called once per statement sent to the database (round-trip counting in benchmarks, metrics). */
  onQuery?: (event: IdempotencyQueryEvent) => void;
  /**
   * PostgreSQL: how long a store operation may spend opening a connection, ms, counted from its
   * start. A connection attempt that timed out (`connectTimeoutMS`: the server is slow to accept
   * new connections, e.g. many opened at once on a busy host) proves nothing was sent, so the
   * operation tries again on a new connection, as long as the attempts' timeouts add up to no more
   * than this window. A refused connection (the server is down), a full pool (its checkout wait
   * timed out), the server's connection limit and any failure after a statement was sent are never
   * tried again. `0`: one attempt, as node-postgres does.
   * @default the pool's `query_timeout` when it is set (so a request waits no longer than one
   * statement may: max(`query_timeout`, `connectTimeoutMS`)), else 2 × `connectTimeoutMS`; no
   * retries without `connectTimeoutMS` (node-postgres then waits for TCP to give up)
   */
  connectRetryWindow?: number;
}

/**
 * Options of {@link TypeOrmIdempotencyStore.purgeExpired}.
 * @publicApi
 */
export interface PurgeExpiredOptions {
  /** Rows deleted per statement (one short transaction each). @default 1000 */
  batchSize?: number;
  /**
   * PostgreSQL: skip the purge when another instance is purging (`pg_try_advisory_xact_lock`, taken
   * per batch). Ignored on SQLite, where one writer at a time is the rule anyway.
   * @default false
   */
  exclusive?: boolean;
}

/** A claim that neither acquired nor found a settled row: released, purged or re-claimed meanwhile. */
const RACE = Symbol('race');
const MAX_CLAIM_ROUNDS = 3;
/**
 * `retryAfterMs` when the current owner is unknown: lost races, a lock timeout, and a duplicate of
 * a transactional run still in flight (its uncommitted row, and so its lease, cannot be seen).
 */
const UNKNOWN_OWNER_RETRY_AFTER_MS = 1_000;
const POSTGRES_LOCK_ERRORS = new Set(['55P03', '40001', '40P01']);
/** Marks a body stored as base64 (`text+b64`), because it holds characters PostgreSQL text rejects. */
const BASE64_SUFFIX = '+b64';
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/** The answer to a claim of a key another request is working on. */
type InProgress = Extract<IdempotencyClaimResult, { state: 'in_progress' }>;

/** SQLite: a transactional run queued or open in this store. */
interface OpenRun {
  readonly fingerprint: string;
  /** Settles once the run's claim is decided: `true` = it holds the key until it commits or rolls back. */
  readonly holdsKey: Promise<boolean>;
}

interface QueryOutcome {
  readonly rows: Array<Record<string, unknown>>;
  readonly affected: number;
}

/**
 * The durable {@link IdempotencyStore}: one table (`IdempotencyRecord`) on PostgreSQL or SQLite
 * (`better-sqlite3`, `sqlite`) through your TypeORM `DataSource`. Every state change is one atomic
 * statement timed by the database clock, so any number of app instances can share it.
 *
 * Round trips: claim of a new key 1, replay or in-progress answer 1 on PostgreSQL (2 on SQLite),
 * heartbeat 1, complete 1, release 1, ping 1, purge 1 per batch; `runInTransaction` for a new key
 * 5 on PostgreSQL (begin, isolation + lock timeout, claim, complete, commit) and 4 on SQLite, plus
 * the handler's own statements; a duplicate of a transactional run still in flight 4 on
 * PostgreSQL (begin, isolation, claim, rollback) and none on SQLite. `onQuery` reports each one.
 *
 * A duplicate of a request whose transactional run has not committed yet is answered
 * `in_progress` (409) at once, never made to wait for that commit; once it has committed, the
 * duplicate gets the replay. PostgreSQL: every transactional run holds the record's advisory lock
 * (`pg_try_advisory_xact_lock`, a 64-bit key derived from the record id and the table) until it
 * ends, and every claim tries that lock in the same statement as its insert; that duplicate is
 * reported `sameRequest: true` with `retryAfterMs` 1 000, because the running request's
 * fingerprint is not committed yet (a different request with the key gets its 422 on the retry).
 * A claim that misses the lock while its holder is only replaying gets the replay too.
 * SQLite: the store remembers the transactional runs queued or open in this process; a duplicate
 * of a run whose own claim is still queued waits for that claim (not for the run's work).
 *
 * Configure the DataSource so a dead database fails fast instead of hanging requests: on
 * PostgreSQL set `connectTimeoutMS` (e.g. 2_000) and `extra: { query_timeout: 5_000 }`; on SQLite
 * use a file with `enableWAL: true`. A new PostgreSQL connection that did not open within
 * `connectTimeoutMS` (a healthy server slow to accept many at once) is tried again on another,
 * within `connectRetryWindow`: nothing was sent on it.
 *
 * A silent PostgreSQL (hung, paused, partitioned: connections open, no answer): a request is
 * answered once its statement times out, never after another round trip. A connection still
 * awaiting an answer is closed rather than rolled back over the wire or pooled (node-postgres would
 * queue anything sent next behind the unanswered statement; PostgreSQL rolls back the transaction
 * of a closed connection). A COMMIT sent without answer throws {@link CommitOutcomeUnknownError}:
 * the request is answered 503, and its retry learns from the record whether it committed.
 *
 * SQLite note: TypeORM runs every SQLite query on one shared connection, so this store runs its own
 * operations one at a time and a transactional request holds the store for its whole transaction:
 * requests with OTHER keys (claims and transactional runs alike) wait for it; only duplicates of
 * an open run are answered at once. Queries your app sends outside the store while such a
 * transaction is open become part of it, and the store's statements become part of any
 * `dataSource.transaction()` your app has open (a TypeORM-wide SQLite limitation); keep other
 * transactions short or off the idempotent paths. Several processes on one SQLite file do not see
 * each other's open runs (a duplicate in another process waits for the file's write lock).
 *
 * SQLite lock waits never block the event loop: on better-sqlite3 the store runs its statements
 * itself on TypeORM's connection with `busy_timeout` 0 (your own statements keep the `timeout` you
 * configured), retries a busy database after 1–20 ms sleeps, and fails an operation that got no
 * write lock within `lockTimeout` of being queued (503 `idempotency_store_timeout`, nothing
 * written); at most `maxQueuedOperations` wait, the next one is refused at once. A transaction
 * takes the write lock with its first statement, the store's claim (retried after a ROLLBACK, as
 * `BEGIN IMMEDIATE` would be), so nothing a handler writes waits for the lock. Statements the store
 * runs itself do not go through TypeORM's logger; `onQuery` reports them.
 *
 * PostgreSQL note: lease-mode claims take the record's advisory lock shared, for the length of
 * their one statement (they never block one another), so a lease-mode claim of a key whose
 * transactional run is open is answered `in_progress` at once too; a transactional run that meets
 * a lease-mode claim of its key in mid-statement is answered `in_progress` as well. Still, use one
 * mode per route.
 * @example
 * ResilienceModule.forRootAsync({
 *   inject: [DataSource],
 *   useFactory: (dataSource: DataSource) => ({ idempotency: { store: new TypeOrmIdempotencyStore(dataSource) } }),
 * });
 * @publicApi
 */
export class TypeOrmIdempotencyStore implements IdempotencyStore {
  private readonly dialect: SqlDialect;
  private readonly sql: IdempotencyStatements;
  private readonly lockTimeout: number;
  private readonly clock: Clock;
  private readonly onQuery?: (event: IdempotencyQueryEvent) => void;
  /**
   * SQLite: the store's operations, one at a time. TypeORM's SQLite drivers share ONE connection
   * among all query runners, so a transaction would otherwise swallow (and on rollback undo) the
   * store's other statements issued meanwhile, and two transactions would nest as savepoints.
   */
  private readonly queue?: SqliteOperationQueue;
  /** better-sqlite3: the store's statements on the DataSource's current connection. */
  private sqliteRunner?: SqliteStatementRunner;
  /** SQLite: the transactional run queued or open for each record id. */
  private readonly openRuns?: Map<string, OpenRun>;
  /** SQLite: how a busy database is waited for. */
  private readonly lockWait: Parameters<typeof retryWhileBusy>[2];
  private readonly purgeLockName: string;
  /** Mixed into every advisory lock key, so two stores' tables in one database never share locks. */
  private readonly lockSalt: bigint;
  /** PostgreSQL: opens the store's connections, again on a new one when opening timed out. */
  private readonly connections: PostgresConnections;

  constructor(
    private readonly dataSource: DataSource,
    options: TypeOrmIdempotencyStoreOptions = {},
  ) {
    this.dialect = dialectOf(dataSource);
    const tableName = options.tableName ?? IDEMPOTENCY_RECORDS_TABLE;
    if (!TABLE_NAME.test(tableName)) {
      throw new Error(`TypeOrmIdempotencyStore: tableName "${tableName}" is not a plain SQL identifier; use letters, digits and underscores (optionally "schema.table").`);
    }
    const quoted = tableName
      .split('.')
      .map((part) => dataSource.driver.escape(part))
      .join('.');
    this.sql = idempotencyStatements(this.dialect, quoted);
    this.purgeLockName = `nest-resilience:purge:${tableName}`;
    this.lockSalt = createHash('sha256').update(`nest-resilience:idempotency:${tableName}`).digest().readBigInt64BE(0);
    this.lockTimeout = positiveInteger(options.lockTimeout ?? 5_000, 'lockTimeout');
    this.clock = options.clock ?? systemClock;
    this.lockWait = { clock: this.clock, random: systemRandom, lockTimeout: this.lockTimeout };
    this.onQuery = options.onQuery;
    this.connections = new PostgresConnections(this.clock, options.connectRetryWindow);
    if (this.dialect === 'sqlite') {
      this.queue = new SqliteOperationQueue(this.clock, this.lockTimeout, positiveInteger(options.maxQueuedOperations ?? 1_000, 'maxQueuedOperations'));
      this.openRuns = new Map();
    }
  }

  claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    const recordId = recordIdOf(claim.namespace, claim.scope, claim.key);
    return this.unlessRunOpen(recordId, claim, () => this.serial(() => this.claimWith(undefined, recordId, claim)));
  }

  heartbeat(lease: IdempotencyLease, leaseMs: number): Promise<boolean> {
    return this.serial(async () => {
      const { rows } = await this.execute('heartbeat', this.sql.heartbeat, this.sql.heartbeatParameters(lease.recordId, lease.owner, Math.ceil(leaseMs)));
      return rows.length > 0;
    });
  }

  complete(lease: IdempotencyLease, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return this.serial(() => this.completeWith(undefined, lease, response, ttlMs));
  }

  release(lease: IdempotencyLease): Promise<boolean> {
    return this.serial(async () => {
      const { rows } = await this.execute('release', this.sql.release, this.sql.releaseParameters(lease.recordId, lease.owner));
      return rows.length > 0;
    });
  }

  /**
   * Transactional mode: claims the key inside a transaction (READ COMMITTED on PostgreSQL), runs
   * `work` with that transaction's `EntityManager`, stores the response in the same transaction and
   * commits. `work` returning `rollback` or throwing rolls everything back (the key stays free) and
   * the error is rethrown. A duplicate arriving before the commit is answered `in_progress` at
   * once, without running its work; after the commit it gets the stored response.
   */
  runInTransaction<T>(
    claim: IdempotencyClaim,
    work: (transaction: EntityManager, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>> {
    const recordId = recordIdOf(claim.namespace, claim.scope, claim.key);
    return this.unlessRunOpen(recordId, claim, () => this.transactionalRun(recordId, claim, work));
  }

  /**
   * Deletes records whose retention ended (and crashed owners' rows past retention), `batchSize`
   * rows per statement, until a batch comes back short. Live claims keep running between batches.
   * @returns the number of rows deleted
   */
  purgeExpired(options: PurgeExpiredOptions = {}): Promise<number> {
    const batchSize = positiveInteger(options.batchSize ?? 1_000, 'batchSize');
    const exclusive = Boolean(options.exclusive) && this.dialect === 'postgres';
    return (async () => {
      let total = 0;
      for (;;) {
        const deleted = await this.serial(() => this.purgeBatch(batchSize, exclusive));
        if (deleted === undefined) return total;
        total += deleted;
        if (deleted < batchSize) return total;
      }
    })();
  }

  async ping(): Promise<void> {
    await this.serial(() => this.execute('ping', this.sql.ping, []));
  }

  /** Keeps the application's warning log: a connection that had to be opened again is reported there once. */
  observe(observer: IdempotencyStoreObserver): void {
    this.connections.observe(observer.warn);
  }

  /**
   * SQLite: answers `in_progress` to a claim of a record whose transactional run in this store
   * holds the key (its row is not committed, so the database cannot tell), without waiting for
   * that run; when the run's own claim is still pending, waits for that claim only (it may find a
   * stored response, which this claim must get too). Otherwise runs `next`. PostgreSQL: `next`.
   */
  private async unlessRunOpen<R>(recordId: string, claim: IdempotencyClaim, next: () => Promise<R>): Promise<R | InProgress> {
    for (let run = this.openRuns?.get(recordId); run; run = this.openRuns?.get(recordId)) {
      if (await run.holdsKey) {
        return { state: 'in_progress', sameRequest: run.fingerprint === claim.fingerprint, retryAfterMs: UNKNOWN_OWNER_RETRY_AFTER_MS };
      }
    }
    return next();
  }

  /** `runInTransaction` once no run of this store holds the key. */
  private transactionalRun<T>(
    recordId: string,
    claim: IdempotencyClaim,
    work: (transaction: EntityManager, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>> {
    // Registered before queueing, so a duplicate never queues behind the run it duplicates.
    const decide = this.registerRun(recordId, claim.fingerprint);
    const run = async (deadline: number | undefined): Promise<TransactionalResult<T>> => {
      const queryRunner = await this.connectedRunner();
      let failure: unknown;
      try {
        return await this.transaction(queryRunner, recordId, claim, work, decide, deadline);
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        await this.endTransaction(queryRunner, failure);
      }
    };
    // never retried as a whole: a busy database is retried step by step, never the handler's work
    return (this.queue ? this.queue.run(run) : run(undefined)).finally(() => decide(false));
  }

  /**
   * Rolls back what is still open and returns the connection to the pool; a PostgreSQL connection
   * with a statement still unanswered (the database went silent) is closed instead, at once.
   */
  private async endTransaction(queryRunner: QueryRunner, failure: unknown): Promise<void> {
    if (queryRunner.isTransactionActive && !this.awaitsAnswer(queryRunner, failure)) {
      try {
        await this.rollback(queryRunner);
      } catch (error) {
        failure = error;
      }
    }
    await this.returnConnection(queryRunner, failure);
  }

  /**
   * Releases `queryRunner`'s connection. One that still awaits an answer is closed, not pooled: a
   * ROLLBACK (or the next user's statement) would queue behind the unanswered one and wait as long
   * again, while PostgreSQL rolls back the transaction of a closed connection by itself, and a
   * statement it has not read yet runs first (so a COMMIT sent may still commit: the record tells).
   */
  private async returnConnection(queryRunner: QueryRunner, failure: unknown): Promise<void> {
    const closable = queryRunner as QueryRunner & { releasePostgresConnection?: (error?: Error) => Promise<void> };
    if (this.awaitsAnswer(queryRunner, failure) && typeof closable.releasePostgresConnection === 'function') {
      await closable.releasePostgresConnection(failure instanceof Error ? failure : new Error('no answer from the database'));
      return;
    }
    await queryRunner.release();
  }

  /**
   * PostgreSQL: whether a statement sent on `queryRunner`'s connection has not been answered, or
   * the connection broke (node-postgres keeps a timed-out statement as its active query until the
   * server answers), or `failure` says no answer came (a read timeout, a dropped connection).
   */
  private awaitsAnswer(queryRunner: QueryRunner, failure: unknown): boolean {
    if (this.dialect !== 'postgres') return false;
    const client = (queryRunner as unknown as { databaseConnection?: PostgresClientState }).databaseConnection;
    if (client && typeof client === 'object') {
      if (client._queryable === false || client._ending === true) return true;
      if (typeof client._getActiveQuery === 'function' && client._getActiveQuery() != null) return true;
      if ((client._queryQueue?.length ?? 0) > 0) return true;
    }
    return failure !== undefined && isUnanswered(failure);
  }

  /**
   * SQLite: records a transactional run of `recordId` as queued; the returned function tells
   * whether its claim left it holding the key (`true`), or that it does not or no longer holds it
   * (`false`: the run is forgotten first, so a waiting duplicate does not wait on it again).
   * PostgreSQL: nothing to record.
   */
  private registerRun(recordId: string, fingerprint: string): (holdsKey: boolean) => void {
    const openRuns = this.openRuns;
    if (!openRuns) return () => undefined;
    let tell!: (holdsKey: boolean) => void;
    const run: OpenRun = { fingerprint, holdsKey: new Promise<boolean>((resolve) => (tell = resolve)) };
    openRuns.set(recordId, run);
    return (holdsKey) => {
      if (!holdsKey && openRuns.get(recordId) === run) openRuns.delete(recordId);
      tell(holdsKey);
    };
  }

  private async transaction<T>(
    queryRunner: QueryRunner,
    recordId: string,
    claim: IdempotencyClaim,
    work: (transaction: EntityManager, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
    claimDecided: (holdsKey: boolean) => void,
    deadline: number | undefined,
  ): Promise<TransactionalResult<T>> {
    let claimed: IdempotencyClaimResult;
    try {
      claimed = await this.beginAndClaim(queryRunner, recordId, claim, deadline);
    } catch (error) {
      if (!isLockConflict(error)) throw error;
      return { state: 'in_progress', sameRequest: true, retryAfterMs: UNKNOWN_OWNER_RETRY_AFTER_MS };
    }
    claimDecided(claimed.state === 'acquired');
    if (claimed.state !== 'acquired') return claimed;
    const outcome = await work(queryRunner.manager, claimed.lease);
    if (outcome.action === 'rollback') throw outcome.error;
    if (!(await this.completeWith(queryRunner, claimed.lease, outcome.response, claim.ttlMs))) {
      throw new Error('TypeOrmIdempotencyStore: the claim made in this transaction vanished before commit; the transaction was rolled back.');
    }
    this.notify('commit', 'COMMIT');
    try {
      await this.commit(queryRunner);
    } catch (error) {
      // Sent but not answered: it may have committed. Only the record can tell (the retry reads it).
      if (this.awaitsAnswer(queryRunner, error)) throw new CommitOutcomeUnknownError(error);
      throw error;
    }
    return { state: 'executed', value: outcome.value };
  }

  /**
   * Opens the transaction and claims the key in it. SQLite (`deadline` set): the claim is the
   * transaction's first statement and a write, so it takes the database's write lock before
   * anything is read, as `BEGIN IMMEDIATE` would (TypeORM only sends `BEGIN`); while another
   * connection holds that lock the transaction is rolled back and tried again after a short sleep,
   * until `deadline` ({@link SqliteLockTimeoutError}). SQLite's advice for `SQLITE_BUSY` inside a
   * transaction is that rollback; the handler's work never runs before the claim holds the lock.
   */
  private beginAndClaim(queryRunner: QueryRunner, recordId: string, claim: IdempotencyClaim, deadline: number | undefined): Promise<IdempotencyClaimResult> {
    const attempt = async () => {
      await this.begin(queryRunner);
      return this.claimWith(queryRunner, recordId, claim);
    };
    if (deadline === undefined) return attempt();
    return retryWhileBusy(attempt, deadline, this.lockWait, async () => {
      if (queryRunner.isTransactionActive) await this.rollback(queryRunner);
    });
  }

  /**
   * COMMIT. SQLite: with `busy_timeout` 0 and retried after short sleeps for `lockTimeout` (in
   * rollback-journal mode a COMMIT waits for other connections' readers; in WAL mode it never
   * waits); still refused then, it throws and the transaction is rolled back: nothing was kept.
   */
  private async commit(queryRunner: QueryRunner): Promise<void> {
    const statements = this.sqliteStatements();
    if (!statements) return queryRunner.commitTransaction();
    const deadline = this.clock.now() + this.lockTimeout;
    await retryWhileBusy(() => statements.withoutBusyWait(() => queryRunner.commitTransaction()), deadline, this.lockWait);
  }

  private async begin(queryRunner: QueryRunner): Promise<void> {
    this.notify('begin', 'START TRANSACTION');
    await queryRunner.startTransaction();
    if (this.dialect === 'postgres') {
      // The claim's advisory lock answers duplicates of open runs at once; the lock timeout bounds
      // any other row-lock wait, which would otherwise last as long as the lock holder.
      await this.execute(
        'begin',
        `SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '${this.lockTimeout}ms'`,
        undefined,
        queryRunner,
      );
    }
  }

  private async rollback(queryRunner: QueryRunner): Promise<void> {
    this.notify('rollback', 'ROLLBACK');
    await queryRunner.rollbackTransaction();
  }

  /** Claims `recordId`: in lease mode without `queryRunner`, else inside its transaction. */
  private async claimWith(queryRunner: QueryRunner | undefined, recordId: string, claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    for (let round = 0; round < MAX_CLAIM_ROUNDS; round++) {
      const result = await this.claimRound(queryRunner, recordId, claim);
      if (result !== RACE) return result;
    }
    return { state: 'in_progress', sameRequest: true, retryAfterMs: UNKNOWN_OWNER_RETRY_AFTER_MS };
  }

  private async claimRound(
    queryRunner: QueryRunner | undefined,
    recordId: string,
    claim: IdempotencyClaim,
  ): Promise<IdempotencyClaimResult | typeof RACE> {
    const owner = randomUUID();
    const parameters = this.sql.claimParameters({
      recordId,
      namespace: claim.namespace,
      scope: claim.scope,
      key: claim.key,
      fingerprint: claim.fingerprint,
      owner,
      leaseMs: Math.ceil(claim.leaseMs),
      ttlMs: Math.ceil(claim.ttlMs),
      method: claim.method.slice(0, 10),
      path: claim.path.slice(0, 2048),
      lockKey: this.advisoryLockKey(recordId),
    });
    const statement = queryRunner ? this.sql.transactionalClaim : this.sql.claim;
    let [row] = (await this.execute('claim', statement, parameters, queryRunner)).rows;
    if (row && row.locked !== undefined && Number(row.locked) === 0) return lockedOutResult(row, claim.fingerprint);
    if (row && Number(row.acquired) === 1) {
      return { state: 'acquired', lease: { recordId, owner, fence: Number(row.fence) }, takeover: Number(row.attempts) > 1 };
    }
    // PostgreSQL's one-statement read uses the statement's snapshot, which misses a row committed
    // while the insert waited for it (`status` NULL: no row in that snapshot); a fresh statement sees it.
    if (!row || row.status === null || !this.sql.claimReturnsExisting) {
      [row] = (await this.execute('read', this.sql.read, this.sql.readParameters(recordId, claim.fingerprint), queryRunner)).rows;
    }
    // Absent: released or purged meanwhile. Claimable: changed under us. Either way, claim again.
    if (!row || Number(row.claimable) === 1) return RACE;
    return settledResult(row, claim.fingerprint);
  }

  private async completeWith(
    queryRunner: QueryRunner | undefined,
    lease: IdempotencyLease,
    response: StoredResponse,
    ttlMs: number,
  ): Promise<boolean> {
    // PostgreSQL text cannot hold NUL characters; such bodies are kept as base64 and marked so.
    const escape = response.body !== null && response.body.includes('\u0000');
    const columns = {
      status: response.status,
      headers: JSON.stringify(response.headers ?? {}),
      body: escape ? Buffer.from(response.body!, 'utf8').toString('base64') : response.body,
      encoding: escape ? `${response.bodyEncoding}${BASE64_SUFFIX}` : response.bodyEncoding,
    };
    const parameters = this.sql.completeParameters(lease.recordId, lease.owner, Math.ceil(ttlMs), columns);
    const { rows } = await this.execute('complete', this.sql.complete, parameters, queryRunner);
    return rows.length > 0;
  }

  /** One batch; `undefined` when another instance holds the purge lock. */
  private async purgeBatch(batchSize: number, exclusive: boolean): Promise<number | undefined> {
    if (!exclusive) return (await this.execute('purge', this.sql.purge, [batchSize])).affected;
    const [row] = (await this.execute('purge', this.sql.purgeExclusive!, [batchSize, this.purgeLockName])).rows;
    return row?.locked ? Number(row.deleted) : undefined;
  }

  /** PostgreSQL advisory lock key of a record: 64 bits of its id (a sha256), salted by the table. */
  private advisoryLockKey(recordId: string): string {
    return BigInt.asIntN(64, BigInt(`0x${recordId.slice(0, 16)}`) ^ this.lockSalt).toString();
  }

  /**
   * A lease-mode operation (statements of the store only). SQLite: queued behind the store's other
   * operations and, while another connection holds the write lock, tried again after short sleeps
   * until `lockTimeout` after it was queued (each try is undone by SQLite when refused).
   */
  private serial<T>(operation: () => Promise<T>): Promise<T> {
    const queue = this.queue;
    if (!queue) return operation();
    return queue.run((deadline) => retryWhileBusy(operation, deadline, this.lockWait));
  }

  private async execute(
    operation: IdempotencyStoreOperation,
    sql: string,
    parameters: unknown[] | undefined,
    queryRunner?: QueryRunner,
  ): Promise<QueryOutcome> {
    this.notify(operation, sql);
    // better-sqlite3: run here, synchronously, without a busy wait (inside the store's transaction
    // too: TypeORM has one connection, so it is the transaction's)
    const statements = this.sqliteStatements();
    if (statements) return statements.run(sql, parameters ?? []);
    const pool = queryRunner || !PREPARED_OPERATIONS.has(operation) ? undefined : this.postgresPool();
    if (pool) {
      // A named statement is parsed and planned once per connection; sent unnamed (what TypeORM
      // does), PostgreSQL re-plans the claim on every call (~1.0 ms against ~0.4 ms measured).
      const result = await this.connections.query(pool, { name: statementNameOf(sql), text: sql, values: parameters ?? [] });
      return { rows: result.rows ?? [], affected: result.rowCount ?? 0 };
    }
    const runner = queryRunner ?? (await this.connectedRunner());
    let failure: unknown;
    try {
      const result = await runner.query(sql, parameters, true);
      return { rows: Array.isArray(result.records) ? result.records : [], affected: result.affected ?? 0 };
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      if (!queryRunner) await this.returnConnection(runner, failure);
    }
  }

  /**
   * A query runner for the store's own statements. PostgreSQL: its connection is opened here, by
   * `PostgresConnections.open`, before anything is sent on it; SQLite: TypeORM's one shared connection.
   */
  private async connectedRunner(): Promise<QueryRunner> {
    const pool = this.postgresPool();
    if (!pool) return this.dataSource.createQueryRunner();
    return this.connections.open(pool, async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        await runner.connect();
        return runner;
      } catch (error) {
        // never connected: releasing it only marks it released (TypeORM keeps a failed connect's promise)
        await runner.release().catch(() => undefined);
        throw error;
      }
    });
  }

  /**
   * better-sqlite3: the store's statements on the DataSource's connection (a new one after the
   * DataSource was re-initialised); `undefined` on other drivers, or before it is initialised.
   */
  private sqliteStatements(): SqliteStatementRunner | undefined {
    if (this.dataSource.options.type !== 'better-sqlite3') return undefined;
    const database = (this.dataSource.driver as unknown as { databaseConnection?: BetterSqliteDatabase }).databaseConnection;
    if (!database) return undefined;
    if (this.sqliteRunner?.database !== database) this.sqliteRunner = new SqliteStatementRunner(database);
    return this.sqliteRunner;
  }

  /** node-postgres' pool behind TypeORM's PostgreSQL driver (`undefined` on SQLite). */
  private postgresPool(): PostgresPool | undefined {
    if (this.dialect !== 'postgres') return undefined;
    return (this.dataSource.driver as unknown as { master?: PostgresPool }).master;
  }

  private notify(operation: IdempotencyStoreOperation, sql: string): void {
    this.onQuery?.({ operation, sql });
  }
}

function settledResult(row: Record<string, unknown>, fingerprint: string): IdempotencyClaimResult {
  const sameRequest = row.fingerprint === fingerprint;
  if (row.status === 'completed') {
    const encoding = String(row.response_encoding ?? 'empty');
    const escaped = encoding.endsWith(BASE64_SUFFIX);
    const body = row.response_body === null || row.response_body === undefined ? null : String(row.response_body);
    const response: StoredResponse = {
      status: Number(row.response_status),
      headers: row.response_headers ? (JSON.parse(String(row.response_headers)) as Record<string, string>) : {},
      body: escaped && body !== null ? Buffer.from(body, 'base64').toString('utf8') : body,
      bodyEncoding: (escaped ? encoding.slice(0, -BASE64_SUFFIX.length) : encoding) as StoredResponse['bodyEncoding'],
    };
    return { state: 'completed', sameRequest, response };
  }
  return { state: 'in_progress', sameRequest, retryAfterMs: Math.max(0, Number(row.remaining_ms)) };
}

/**
 * PostgreSQL, the record's advisory lock held by another transaction: a transactional run of the
 * key is open (its row is not visible yet) or answering a replay. A committed row no claim can
 * take (a live response, a live lease-mode owner) is the answer; otherwise the key is in flight.
 */
function lockedOutResult(row: Record<string, unknown>, fingerprint: string): IdempotencyClaimResult {
  if (row.status !== null && row.status !== undefined && Number(row.claimable) === 0) return settledResult(row, fingerprint);
  return { state: 'in_progress', sameRequest: true, retryAfterMs: UNKNOWN_OWNER_RETRY_AFTER_MS };
}

function dialectOf(dataSource: DataSource): SqlDialect {
  const type: string = dataSource.options.type;
  if (type === 'postgres') return 'postgres';
  if (type === 'better-sqlite3' || type === 'sqlite') return 'sqlite';
  throw new Error(
    `TypeOrmIdempotencyStore supports the "postgres", "better-sqlite3" and "sqlite" TypeORM drivers, not "${type}"; use one of them or implement IdempotencyStore for your database.`,
  );
}

/** The per-request operations, sent as named (prepared) statements on PostgreSQL outside a transaction. */
const PREPARED_OPERATIONS: ReadonlySet<IdempotencyStoreOperation> = new Set(['claim', 'read', 'heartbeat', 'complete', 'release']);

function isLockConflict(error: unknown): boolean {
  const code = (error as { driverError?: { code?: unknown } } | null)?.driverError?.code;
  return typeof code === 'string' && POSTGRES_LOCK_ERRORS.has(code);
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`TypeOrmIdempotencyStore: ${name} must be a positive integer (got ${value}).`);
  }
  return value;
}
