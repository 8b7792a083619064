// PROTOTYPE, bench-only: what the PostgreSQL store would cost per request if it coalesced the
// statements of concurrent requests, one statement (one executor start, one commit, one socket
// write and wake-up on each side) for every claim (or complete) queued while `maxInFlight`
// statements were already on the wire. Each request still makes its 2 (new key) / 1 (replay)
// round trips and still waits for its own durable commit; the same SQL as the store's, over arrays.
// Not used by the library: a measurement of the design for issue 23 (see BENCHMARKS.md).
import { createHash, randomUUID } from 'node:crypto';
import { recordIdOf } from 'nest-resilience/core';

const NOW = `floor(extract(epoch from now()) * 1000)::bigint`;

/** The claim of `postgresClaim` (lib/typeorm/idempotency-sql.ts) for many keys at once, rows in input order. */
export function batchedClaimSql(table: string): string {
  return `WITH input AS MATERIALIZED (
  SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::bigint[], $8::bigint[], $9::varchar[], $10::varchar[], $11::bigint[])
    WITH ORDINALITY AS i(lookup_hash, namespace, scope, idempotency_key, fingerprint, owner_token, lease_ms, ttl_ms, request_method, request_path, lock_key, n)
),
claim_lock AS MATERIALIZED (SELECT i.*, pg_try_advisory_xact_lock_shared(i.lock_key) AS locked, ${NOW} AS now_ms FROM input i),
existing AS MATERIALIZED (
  SELECT l.n, e.status, e.fingerprint, e.response_status, e.response_headers, e.response_body, e.response_encoding,
    e.locked_until - l.now_ms AS remaining_ms,
    CASE WHEN (e.status = 'in_progress' AND e.locked_until <= l.now_ms AND e.fingerprint = l.fingerprint)
           OR (e.status = 'completed' AND e.expires_at <= l.now_ms) THEN 1 ELSE 0 END AS claimable
  FROM claim_lock l JOIN ${table} e ON e.lookup_hash = l.lookup_hash
),
claimed AS (
  INSERT INTO ${table} AS r (lookup_hash, namespace, scope, idempotency_key, fingerprint, status, owner_token, fence, attempts,
    locked_until, expires_at, request_method, request_path, created_at, updated_at)
  SELECT l.lookup_hash, l.namespace, l.scope, l.idempotency_key, l.fingerprint, 'in_progress', l.owner_token, 1, 1,
    l.now_ms + l.lease_ms, l.now_ms + l.ttl_ms, l.request_method, l.request_path, l.now_ms, l.now_ms
  FROM claim_lock l WHERE l.locked AND NOT EXISTS (SELECT 1 FROM existing x WHERE x.n = l.n AND x.claimable = 0)
  ORDER BY l.lookup_hash
  ON CONFLICT (lookup_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, status = 'in_progress', owner_token = excluded.owner_token,
    fence = r.fence + 1,
    attempts = CASE WHEN r.status = 'in_progress' THEN r.attempts + 1 ELSE 1 END,
    locked_until = excluded.locked_until, expires_at = excluded.expires_at,
    request_method = excluded.request_method, request_path = excluded.request_path,
    response_status = NULL, response_headers = NULL, response_body = NULL, response_encoding = NULL,
    created_at = CASE WHEN r.status = 'in_progress' THEN r.created_at ELSE excluded.created_at END,
    updated_at = excluded.updated_at, completed_at = NULL
  WHERE (r.status = 'in_progress' AND r.locked_until <= excluded.created_at AND r.fingerprint = excluded.fingerprint)
     OR (r.status = 'completed' AND r.expires_at <= excluded.created_at)
  RETURNING r.lookup_hash, r.fence, r.attempts
)
SELECT l.n, CASE WHEN l.locked THEN 1 ELSE 0 END AS locked, CASE WHEN c.fence IS NULL THEN 0 ELSE 1 END AS acquired,
  c.fence, c.attempts, x.status, x.fingerprint, x.response_status, x.response_headers, x.response_body,
  x.response_encoding, x.remaining_ms, x.claimable
FROM claim_lock l LEFT JOIN claimed c ON c.lookup_hash = l.lookup_hash LEFT JOIN existing x ON x.n = l.n
ORDER BY l.n`;
}

/** The store's complete for many leases at once (returns the lookup hashes it completed). */
export function batchedCompleteSql(table: string): string {
  return `UPDATE ${table} AS t SET status = 'completed', owner_token = NULL, locked_until = NULL,
  response_status = v.response_status, response_headers = v.response_headers, response_body = v.response_body,
  response_encoding = v.response_encoding, completed_at = n.now_ms, updated_at = n.now_ms, expires_at = n.now_ms + v.ttl_ms
FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::varchar[])
    AS v(lookup_hash, owner_token, ttl_ms, response_status, response_headers, response_body, response_encoding),
  (SELECT ${NOW} AS now_ms) n
WHERE t.lookup_hash = v.lookup_hash AND t.owner_token = v.owner_token AND t.status = 'in_progress'
RETURNING t.lookup_hash`;
}

interface Pool {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/**
 * Sends what is queued as one statement whenever fewer than `maxInFlight` are on the wire: alone
 * (no waiting) when the database keeps up, in batches when requests queue behind it.
 */
class Coalescer<I, O> {
  private queue: Array<{ input: I; resolve: (output: O) => void; reject: (error: unknown) => void }> = [];
  private inFlight = 0;
  statements = 0;
  items = 0;

  constructor(
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
    private readonly send: (inputs: I[]) => Promise<O[]>,
  ) {}

  run(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      this.statements++;
      this.items += batch.length;
      this.send(batch.map((entry) => entry.input)).then(
        (outputs) => batch.forEach((entry, index) => entry.resolve(outputs[index])),
        (error: unknown) => batch.forEach((entry) => entry.reject(error)),
      ).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }
}

export interface PrototypeClaim {
  readonly key: string;
  readonly fingerprint: string;
}

/** Claims and completes through coalesced statements (a key appears once per batch: the benchmark's keys are unique, or the one replay key, which only reads). */
export class CoalescedPostgresPrototype {
  private readonly claims: Coalescer<PrototypeClaim & { recordId: string; owner: string }, Record<string, unknown>>;
  private readonly completes: Coalescer<{ recordId: string; owner: string; body: string }, boolean>;
  private readonly salt = createHash('sha256').update('nest-resilience:idempotency:idempotency_records').digest().readBigInt64BE(0);

  constructor(pool: Pool, maxInFlight: number, maxBatch = 32) {
    const claimSql = batchedClaimSql('"idempotency_records"');
    const completeSql = batchedCompleteSql('"idempotency_records"');
    this.claims = new Coalescer(maxInFlight, maxBatch, async (inputs) => {
      const column = <T>(pick: (input: (typeof inputs)[number]) => T) => inputs.map(pick);
      const { rows } = await pool.query({
        name: 'prototype_batched_claim',
        text: claimSql,
        values: [
          column((c) => c.recordId),
          column(() => 'default'),
          column(() => ''),
          column((c) => c.key),
          column((c) => c.fingerprint),
          column((c) => c.owner),
          column(() => 30_000),
          column(() => 86_400_000),
          column(() => 'POST'),
          column(() => '/orders'),
          column((c) => BigInt.asIntN(64, BigInt(`0x${c.recordId.slice(0, 16)}`) ^ this.salt).toString()),
        ],
      });
      return rows;
    });
    this.completes = new Coalescer(maxInFlight, maxBatch, async (inputs) => {
      const { rows } = await pool.query({
        name: 'prototype_batched_complete',
        text: completeSql,
        values: [inputs.map((c) => c.recordId), inputs.map((c) => c.owner), inputs.map(() => 86_400_000), inputs.map(() => 201), inputs.map(() => '{}'), inputs.map((c) => c.body), inputs.map(() => 'json')],
      });
      const done = new Set(rows.map((row) => row.lookup_hash));
      return inputs.map((c) => done.has(c.recordId));
    });
  }

  /** `acquired` with the owner, or the settled row's status. */
  async claim(claim: PrototypeClaim): Promise<{ state: string; recordId: string; owner: string }> {
    const recordId = recordIdOf('default', '', claim.key);
    const owner = randomUUID();
    const row = await this.claims.run({ ...claim, recordId, owner });
    return { state: Number(row.acquired) === 1 ? 'acquired' : String(row.status), recordId, owner };
  }

  complete(recordId: string, owner: string, body: string): Promise<boolean> {
    return this.completes.run({ recordId, owner, body });
  }

  /** Requests per statement so far. */
  batchSizes(): { claim: number; complete: number } {
    return { claim: this.claims.items / Math.max(1, this.claims.statements), complete: this.completes.items / Math.max(1, this.completes.statements) };
  }
}
