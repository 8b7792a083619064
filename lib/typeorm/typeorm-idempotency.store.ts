import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  StoredResponse,
  TransactionalOutcome,
  TransactionalResult,
} from '../idempotency/idempotency-store.interface.js';
import { recordIdOf } from '../idempotency/record-id.js';
import { IDEMPOTENCY_RECORDS_TABLE } from './idempotency-record.entity.js';
import { idempotencyStatements, type IdempotencyStatements, type SqlDialect } from './idempotency-sql.js';

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
   * PostgreSQL, transactional mode: how long a duplicate request waits for the first request's
   * uncommitted claim (`SET LOCAL lock_timeout`) before it is answered "in progress" (409).
   * @default 5_000
   */
  lockTimeout?: number;
  /** Called once per statement sent to the database (round-trip counting in benchmarks, metrics). */
  onQuery?: (event: IdempotencyQueryEvent) => void;
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
/** `retryAfterMs` when the current owner is unknown (lost races, lock timeout in transactional mode). */
const UNKNOWN_OWNER_RETRY_AFTER_MS = 1_000;
const POSTGRES_LOCK_ERRORS = new Set(['55P03', '40001', '40P01']);
/** Marks a body stored as base64 (`text+b64`), because it holds characters PostgreSQL text rejects. */
const BASE64_SUFFIX = '+b64';
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

interface QueryOutcome {
  readonly rows: Array<Record<string, unknown>>;
  readonly affected: number;
}

/**
 * Runs one operation at a time. TypeORM's SQLite drivers share ONE connection among all query
 * runners, so a transaction would otherwise swallow (and on rollback undo) the store's other
 * statements issued meanwhile, and two transactions would nest as savepoints.
 */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.tail.then(operation);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * The durable {@link IdempotencyStore}: one table (`IdempotencyRecord`) on PostgreSQL or SQLite
 * (`better-sqlite3`, `sqlite`) through your TypeORM `DataSource`. Every state change is one atomic
 * statement timed by the database clock, so any number of app instances can share it.
 *
 * Round trips: claim of a new key 1, replay or in-progress answer 1 on PostgreSQL (2 on SQLite),
 * heartbeat 1, complete 1, release 1, ping 1, purge 1 per batch; `runInTransaction` for a new key
 * 5 on PostgreSQL (begin, isolation + lock timeout, claim, complete, commit) and 4 on SQLite, plus
 * the handler's own statements. `onQuery` reports each one.
 *
 * Configure the DataSource so a dead database fails fast instead of hanging requests: on
 * PostgreSQL set `connectTimeoutMS` (e.g. 2_000) and `extra: { query_timeout: 5_000 }`; on SQLite
 * use a file with `enableWAL: true` and a busy timeout (`timeout`, better-sqlite3 default 5 s).
 *
 * SQLite note: TypeORM runs every SQLite query on one shared connection, so this store runs its own
 * operations one at a time and a transactional request holds the store for its whole transaction.
 * Queries your app sends outside the store while such a transaction is open become part of it, and
 * the store's statements become part of any `dataSource.transaction()` your app has open (a
 * TypeORM-wide SQLite limitation); keep other transactions short or off the idempotent paths.
 *
 * PostgreSQL note: a lease-mode claim of a key whose transactional run has not committed yet waits
 * for that commit (the `lockTimeout` applies inside `runInTransaction` only); use one mode per route.
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
  private readonly onQuery?: (event: IdempotencyQueryEvent) => void;
  private readonly queue?: SerialQueue;
  private readonly purgeLockName: string;

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
    this.lockTimeout = positiveInteger(options.lockTimeout ?? 5_000, 'lockTimeout');
    this.onQuery = options.onQuery;
    if (this.dialect === 'sqlite') this.queue = new SerialQueue();
  }

  claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    return this.serial(() => this.claimWith(undefined, claim));
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
   * the error is rethrown. A duplicate arriving meanwhile waits for the commit (at most
   * `lockTimeout` on PostgreSQL, then `in_progress`) and then gets the stored response.
   */
  runInTransaction<T>(
    claim: IdempotencyClaim,
    work: (transaction: EntityManager, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>> {
    return this.serial(async () => {
      const queryRunner = this.dataSource.createQueryRunner();
      try {
        return await this.transaction(queryRunner, claim, work);
      } finally {
        if (queryRunner.isTransactionActive) await this.rollback(queryRunner).catch(() => undefined);
        await queryRunner.release();
      }
    });
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

  private async transaction<T>(
    queryRunner: QueryRunner,
    claim: IdempotencyClaim,
    work: (transaction: EntityManager, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>> {
    await this.begin(queryRunner);
    let claimed: IdempotencyClaimResult;
    try {
      claimed = await this.claimWith(queryRunner, claim);
    } catch (error) {
      if (!isLockConflict(error)) throw error;
      return { state: 'in_progress', sameRequest: true, retryAfterMs: UNKNOWN_OWNER_RETRY_AFTER_MS };
    }
    if (claimed.state !== 'acquired') return claimed;
    const outcome = await work(queryRunner.manager, claimed.lease);
    if (outcome.action === 'rollback') throw outcome.error;
    if (!(await this.completeWith(queryRunner, claimed.lease, outcome.response, claim.ttlMs))) {
      throw new Error('TypeOrmIdempotencyStore: the claim made in this transaction vanished before commit; the transaction was rolled back.');
    }
    this.notify('commit', 'COMMIT');
    await queryRunner.commitTransaction();
    return { state: 'executed', value: outcome.value };
  }

  private async begin(queryRunner: QueryRunner): Promise<void> {
    this.notify('begin', 'START TRANSACTION');
    await queryRunner.startTransaction();
    if (this.dialect === 'postgres') {
      // Without a lock timeout a duplicate would wait for the first request's whole handler.
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

  private async claimWith(queryRunner: QueryRunner | undefined, claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    const recordId = recordIdOf(claim.namespace, claim.scope, claim.key);
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
    });
    let [row] = (await this.execute('claim', this.sql.claim, parameters, queryRunner)).rows;
    if (row && Number(row.acquired) === 1) {
      return { state: 'acquired', lease: { recordId, owner, fence: Number(row.fence) }, takeover: Number(row.attempts) > 1 };
    }
    // PostgreSQL's one-statement read uses the statement's snapshot, which misses a row committed
    // while the insert waited for it; a fresh statement sees it.
    if (!row || !this.sql.claimReturnsExisting) {
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

  private serial<T>(operation: () => Promise<T>): Promise<T> {
    return this.queue ? this.queue.run(operation) : operation();
  }

  private async execute(
    operation: IdempotencyStoreOperation,
    sql: string,
    parameters: unknown[] | undefined,
    queryRunner?: QueryRunner,
  ): Promise<QueryOutcome> {
    this.notify(operation, sql);
    const runner = queryRunner ?? this.dataSource.createQueryRunner();
    try {
      const result = await runner.query(sql, parameters, true);
      return { rows: Array.isArray(result.records) ? result.records : [], affected: result.affected ?? 0 };
    } finally {
      if (!queryRunner) await runner.release();
    }
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

function dialectOf(dataSource: DataSource): SqlDialect {
  const type: string = dataSource.options.type;
  if (type === 'postgres') return 'postgres';
  if (type === 'better-sqlite3' || type === 'sqlite') return 'sqlite';
  throw new Error(
    `TypeOrmIdempotencyStore supports the "postgres", "better-sqlite3" and "sqlite" TypeORM drivers, not "${type}"; use one of them or implement IdempotencyStore for your database.`,
  );
}

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
