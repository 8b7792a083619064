/**
 * The SQL of the idempotency state machine (claim, heartbeat, complete, release; the contract is
 * `IdempotencyStore` in core/idempotency/idempotency-store.interface.ts) for PostgreSQL and SQLite.
 * Every transition is one statement evaluated against the database clock, so instances with skewed
 * clocks never disagree about who owns a key. Times are epoch milliseconds in `bigint` columns.
 * @internal
 */
export type SqlDialect = 'postgres' | 'sqlite';

/** Parameters of a claim, in the order every claim statement binds them. @internal */
export interface ClaimParameters {
  readonly recordId: string;
  readonly namespace: string;
  readonly scope: string;
  readonly key: string;
  readonly fingerprint: string;
  readonly owner: string;
  readonly leaseMs: number;
  readonly ttlMs: number;
  readonly method: string;
  readonly path: string;
  /**
   * PostgreSQL: the 64-bit advisory lock key of the record (signed, decimal text), taken by every
   * claim so a claim never waits for a transactional run of the same key. Ignored on SQLite.
   */
  readonly lockKey: string;
}

/** A prepared statement: SQL text plus how to turn arguments into its positional parameters. @internal */
export interface IdempotencyStatements {
  /**
   * Lease-mode claim. PostgreSQL: shared advisory lock + upsert + read in one statement (rows:
   * `locked`, `acquired`, …; `locked` 0 = another transaction holds the record's lock: a
   * transactional run of the key is open, or replaying; the committed row, if any, comes along).
   * SQLite: upsert only.
   */
  readonly claim: string;
  /**
   * The claim inside `runInTransaction`. PostgreSQL: like `claim`, but the advisory lock is
   * exclusive and held until the transaction ends, so a duplicate run (or lease claim) of the key
   * is told at once that it is in flight. SQLite: same as `claim`.
   */
  readonly transactionalClaim: string;
  /** Whether `claim` also returns the existing row when it did not acquire (one round trip for a replay). */
  readonly claimReturnsExisting: boolean;
  claimParameters(claim: ClaimParameters): unknown[];
  /** Reads the existing row (after a claim that did not acquire). */
  readonly read: string;
  readParameters(recordId: string, fingerprint: string): unknown[];
  readonly heartbeat: string;
  heartbeatParameters(recordId: string, owner: string, leaseMs: number): unknown[];
  readonly complete: string;
  completeParameters(recordId: string, owner: string, ttlMs: number, response: StoredColumns): unknown[];
  readonly release: string;
  releaseParameters(recordId: string, owner: string): unknown[];
  readonly purge: string;
  /** PostgreSQL only: the purge batch guarded by `pg_try_advisory_xact_lock` (rows: `locked`, `deleted`). */
  readonly purgeExclusive?: string;
  readonly ping: string;
}

/** The response columns written by `complete`. @internal */
export interface StoredColumns {
  readonly status: number;
  readonly headers: string;
  readonly body: string | null;
  readonly encoding: string;
}

const NOW_MS: Record<SqlDialect, string> = {
  postgres: `floor(extract(epoch from now()) * 1000)::bigint`,
  sqlite: `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
};

const INSERT_COLUMNS = `lookup_hash, namespace, scope, idempotency_key, fingerprint, status, owner_token, fence, attempts,
  locked_until, expires_at, request_method, request_path, created_at, updated_at`;

/** Columns every read returns; `remaining_ms` is the live lease left, `claimable` means "a claim would take it". */
function readColumns(alias: string, now: string, fingerprintParameter: string): string {
  return `${alias}.fence AS fence, ${alias}.attempts AS attempts, ${alias}.status AS status, ${alias}.fingerprint AS fingerprint,
  ${alias}.response_status AS response_status, ${alias}.response_headers AS response_headers,
  ${alias}.response_body AS response_body, ${alias}.response_encoding AS response_encoding,
  ${alias}.locked_until - ${now} AS remaining_ms,
  CASE WHEN (${alias}.status = 'in_progress' AND ${alias}.locked_until <= ${now} AND ${alias}.fingerprint = ${fingerprintParameter})
         OR (${alias}.status = 'completed' AND ${alias}.expires_at <= ${now}) THEN 1 ELSE 0 END AS claimable`;
}

/**
 * The conflict branch of the claim: take over an expired lease of the same request (attempts + 1,
 * so `attempts > 1` means takeover) or reuse a record whose retention ended (a new request:
 * attempts back to 1). Either way the fence moves on. Any other row is left untouched.
 */
function upsertTail(row: string, now: string): string {
  return `ON CONFLICT (lookup_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, status = 'in_progress', owner_token = excluded.owner_token,
    fence = ${row}.fence + 1,
    attempts = CASE WHEN ${row}.status = 'in_progress' THEN ${row}.attempts + 1 ELSE 1 END,
    locked_until = excluded.locked_until, expires_at = excluded.expires_at,
    request_method = excluded.request_method, request_path = excluded.request_path,
    response_status = NULL, response_headers = NULL, response_body = NULL, response_encoding = NULL,
    created_at = CASE WHEN ${row}.status = 'in_progress' THEN ${row}.created_at ELSE excluded.created_at END,
    updated_at = excluded.updated_at, completed_at = NULL
  WHERE (${row}.status = 'in_progress' AND ${row}.locked_until <= ${now} AND ${row}.fingerprint = excluded.fingerprint)
     OR (${row}.status = 'completed' AND ${row}.expires_at <= ${now})`;
}

/** Rows the purge may delete: retention over, and no live lease (a crashed owner's row included). */
function purgeable(now: string): string {
  return `expires_at <= ${now} AND (status = 'completed' OR locked_until <= ${now})`;
}

/**
 * The PostgreSQL claim: try the record's advisory lock (transaction-scoped: released when the
 * statement's or the explicit transaction's commit or rollback ends it), and only when it is
 * obtained (and the row is absent or claimable) upsert the row. A replay or a live lease thus writes
 * nothing. Without the lock the statement writes nothing (the INSERT would wait on the uncommitted
 * unique entry of the transactional run holding it) and answers `locked = 0`.
 *
 * Always one row: `locked`, `acquired` (with the new `fence` and `attempts`), and the existing row
 * as the statement's snapshot saw it (`status` NULL: there was none). The database clock is read
 * once (`now_ms`) and the existing row once: PostgreSQL builds every expression of a prepared
 * statement again on each execution, which was most of a replay's cost when the statement repeated
 * them per branch (backend instructions, bench/idempotency/postgres-statement-instructions.ts on
 * PostgreSQL 15: a replay 368k before, 253k since; a new key's claim 474k before, 355k since).
 */
function postgresClaim(table: string, lockFunction: 'pg_try_advisory_xact_lock' | 'pg_try_advisory_xact_lock_shared'): string {
  return `WITH claim_lock AS MATERIALIZED (SELECT ${lockFunction}($11::bigint) AS locked, ${NOW_MS.postgres} AS now_ms),
existing AS MATERIALIZED (
  SELECT ${readColumns('e', 'l.now_ms', '$5')}
  FROM claim_lock l JOIN ${table} e ON e.lookup_hash = $1
),
claimed AS (
  INSERT INTO ${table} AS r (${INSERT_COLUMNS})
  SELECT $1, $2, $3, $4, $5, 'in_progress', $6, 1, 1, l.now_ms + $7::bigint, l.now_ms + $8::bigint, $9, $10, l.now_ms, l.now_ms
  FROM claim_lock l WHERE l.locked
    -- a row that cannot be claimed (a replay, a live lease, another request's key) is only read:
    -- the upsert would lock it, and a row lock is a write that a durable commit waits to flush
    AND NOT EXISTS (SELECT 1 FROM existing x WHERE x.claimable = 0)
  ${upsertTail('r', 'excluded.created_at')}
  RETURNING r.fence, r.attempts
)
SELECT CASE WHEN l.locked THEN 1 ELSE 0 END AS locked, CASE WHEN c.fence IS NULL THEN 0 ELSE 1 END AS acquired,
  c.fence AS fence, c.attempts AS attempts, x.status AS status, x.fingerprint AS fingerprint,
  x.response_status AS response_status, x.response_headers AS response_headers, x.response_body AS response_body,
  x.response_encoding AS response_encoding, x.remaining_ms AS remaining_ms, x.claimable AS claimable
FROM claim_lock l LEFT JOIN claimed c ON true LEFT JOIN existing x ON true`;
}

function postgresStatements(table: string): IdempotencyStatements {
  const now = NOW_MS.postgres;
  return {
    claim: postgresClaim(table, 'pg_try_advisory_xact_lock_shared'),
    transactionalClaim: postgresClaim(table, 'pg_try_advisory_xact_lock'),
    claimReturnsExisting: true,
    claimParameters: (c) => [c.recordId, c.namespace, c.scope, c.key, c.fingerprint, c.owner, c.leaseMs, c.ttlMs, c.method, c.path, c.lockKey],
    read: `SELECT 0 AS acquired, ${readColumns('e', now, '$2')} FROM ${table} e WHERE e.lookup_hash = $1`,
    readParameters: (recordId, fingerprint) => [recordId, fingerprint],
    heartbeat: `UPDATE ${table} SET locked_until = ${now} + $3::bigint, updated_at = ${now}
WHERE lookup_hash = $1 AND owner_token = $2 AND status = 'in_progress' RETURNING 1 AS ok`,
    heartbeatParameters: (recordId, owner, leaseMs) => [recordId, owner, leaseMs],
    complete: `UPDATE ${table} SET status = 'completed', owner_token = NULL, locked_until = NULL,
  response_status = $4, response_headers = $5, response_body = $6, response_encoding = $7,
  completed_at = ${now}, updated_at = ${now}, expires_at = ${now} + $3::bigint
WHERE lookup_hash = $1 AND owner_token = $2 AND status = 'in_progress' RETURNING 1 AS ok`,
    completeParameters: (recordId, owner, ttlMs, r) => [recordId, owner, ttlMs, r.status, r.headers, r.body, r.encoding],
    release: `DELETE FROM ${table} WHERE lookup_hash = $1 AND owner_token = $2 AND status = 'in_progress' RETURNING 1 AS ok`,
    releaseParameters: (recordId, owner) => [recordId, owner],
    // The predicate is repeated outside the sub-select: a row re-claimed meanwhile gets a new version,
    // which the DELETE re-checks and then leaves alone.
    purge: `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE ${purgeable(now)} LIMIT $1)) AND ${purgeable(now)}`,
    purgeExclusive: `WITH purge_lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($2)) AS locked),
deleted AS (
  DELETE FROM ${table} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ${table} WHERE (SELECT locked FROM purge_lock) AND ${purgeable(now)} LIMIT $1
  )) AND ${purgeable(now)}
  RETURNING 1
)
SELECT (SELECT locked FROM purge_lock) AS locked, (SELECT count(*) FROM deleted) AS deleted`,
    ping: 'SELECT 1 AS ok',
  };
}

function sqliteStatements(table: string): IdempotencyStatements {
  const now = NOW_MS.sqlite;
  const claim = `INSERT INTO ${table} (${INSERT_COLUMNS})
VALUES (?, ?, ?, ?, ?, 'in_progress', ?, 1, 1, ${now} + ?, ${now} + ?, ?, ?, ${now}, ${now})
${upsertTail(table, now)}
RETURNING 1 AS acquired, fence, attempts`;
  return {
    // One process, one connection: the store itself keeps duplicates of an open transactional run out.
    claim,
    transactionalClaim: claim,
    claimReturnsExisting: false,
    claimParameters: (c) => [c.recordId, c.namespace, c.scope, c.key, c.fingerprint, c.owner, c.leaseMs, c.ttlMs, c.method, c.path],
    read: `SELECT 0 AS acquired, ${readColumns('e', now, '?')} FROM ${table} e WHERE e.lookup_hash = ?`,
    readParameters: (recordId, fingerprint) => [fingerprint, recordId],
    heartbeat: `UPDATE ${table} SET locked_until = ${now} + ?, updated_at = ${now}
WHERE lookup_hash = ? AND owner_token = ? AND status = 'in_progress' RETURNING 1 AS ok`,
    heartbeatParameters: (recordId, owner, leaseMs) => [leaseMs, recordId, owner],
    complete: `UPDATE ${table} SET status = 'completed', owner_token = NULL, locked_until = NULL,
  response_status = ?, response_headers = ?, response_body = ?, response_encoding = ?,
  completed_at = ${now}, updated_at = ${now}, expires_at = ${now} + ?
WHERE lookup_hash = ? AND owner_token = ? AND status = 'in_progress' RETURNING 1 AS ok`,
    completeParameters: (recordId, owner, ttlMs, r) => [r.status, r.headers, r.body, r.encoding, ttlMs, recordId, owner],
    release: `DELETE FROM ${table} WHERE lookup_hash = ? AND owner_token = ? AND status = 'in_progress' RETURNING 1 AS ok`,
    releaseParameters: (recordId, owner) => [recordId, owner],
    purge: `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${purgeable(now)} LIMIT ?) AND ${purgeable(now)}`,
    ping: 'SELECT 1 AS ok',
  };
}

/** The statements of `dialect` for the (already quoted) `table`. @internal */
export function idempotencyStatements(dialect: SqlDialect, table: string): IdempotencyStatements {
  return dialect === 'postgres' ? postgresStatements(table) : sqliteStatements(table);
}
