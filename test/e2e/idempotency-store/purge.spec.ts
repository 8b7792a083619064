import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { InMemoryIdempotencyStore, type IdempotencyClaim } from 'nest-resilience';
import { FakeClock } from 'nest-resilience/testing';
import { startPurger, type IdempotencyQueryEvent } from 'nest-resilience/typeorm';
import { hasPostgres } from '../../support/postgres.js';
import { postgresHarness, sqliteHarness, type SqlHarness } from './support.js';

const EXPIRED = 10_000;
const response = { status: 201, headers: {}, body: '{"ok":true}', bodyEncoding: 'json' as const };

function claimOf(key: string): IdempotencyClaim {
  return { namespace: 'purge', scope: '', key, fingerprint: 'f'.repeat(64), method: 'POST', path: '/p', leaseMs: 60_000, ttlMs: 3_600_000 };
}

/** Bulk-inserts `count` expired rows (half completed, half abandoned leases) plus rows that must survive. */
async function seed(harness: SqlHarness, dialect: 'postgres' | 'sqlite'): Promise<void> {
  const now = dialect === 'postgres' ? `floor(extract(epoch from now()) * 1000)::bigint` : `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
  const series =
    dialect === 'postgres'
      ? `SELECT i FROM generate_series(1, ${EXPIRED}) AS s(i)`
      : `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${EXPIRED}) SELECT i FROM s`;
  const hash = dialect === 'postgres' ? `lpad(i::text, 64, '0')` : `printf('%064d', i)`;
  const insert = (select: string) =>
    `INSERT INTO idempotency_records (lookup_hash, namespace, scope, idempotency_key, fingerprint, status, owner_token, fence, attempts,
       locked_until, expires_at, request_method, request_path, response_status, response_headers, response_body, response_encoding, created_at, updated_at)
     ${select}`;
  // i odd: completed long ago; i even: a crashed owner's lease, retention over.
  await harness.dataSource.query(
    insert(`SELECT ${hash}, 'seed', '', 'expired-' || i, 'f', CASE WHEN i % 2 = 1 THEN 'completed' ELSE 'in_progress' END,
       CASE WHEN i % 2 = 1 THEN NULL ELSE 'dead-owner' END, 1, 1,
       CASE WHEN i % 2 = 1 THEN NULL ELSE ${now} - 5000 END, ${now} - 1000, 'POST', '/seed', 201, '{}', '{}', 'json', ${now} - 9000, ${now} - 9000
     FROM (${series}) AS seeded`),
  );
  // Survivors: retention over but the lease still live (a slow handler), and a live completed row.
  await harness.dataSource.query(
    insert(`SELECT 'live-lease', 'seed', '', 'live-lease', 'f', 'in_progress', 'owner', 1, 1, ${now} + 600000, ${now} - 1000, 'POST', '/seed', NULL, NULL, NULL, NULL, ${now}, ${now}`),
  );
  await harness.dataSource.query(
    insert(`SELECT 'live-done', 'seed', '', 'live-done', 'f', 'completed', NULL, 1, 1, NULL, ${now} + 600000, 'POST', '/seed', 201, '{}', '{}', 'json', ${now}, ${now}`),
  );
}

const targets = [
  { name: 'SQLite (file, WAL)', skip: false, dialect: 'sqlite' as const, open: (onQuery: (e: IdempotencyQueryEvent) => void) => sqliteHarness('file', { store: { onQuery } }) },
  { name: 'PostgreSQL', skip: !hasPostgres, dialect: 'postgres' as const, open: (onQuery: (e: IdempotencyQueryEvent) => void) => postgresHarness({ store: { onQuery } }) },
];

for (const target of targets) {
  describe.skipIf(target.skip)(`purgeExpired on ${target.name}`, () => {
    let harness: SqlHarness;
    const statements: IdempotencyQueryEvent[] = [];
    beforeAll(async () => {
      harness = await target.open((event) => statements.push(event));
    });
    afterAll(async () => harness?.close());

    it(`removes ${EXPIRED} expired records in batches while live claims keep succeeding`, async () => {
      await seed(harness, target.dialect);
      const rows = () => harness.dataSource.query('SELECT count(*) AS n FROM idempotency_records').then((r: Array<{ n: unknown }>) => Number(r[0].n));
      expect(await rows()).toBe(EXPIRED + 2);
      statements.length = 0;

      let purging = true;
      const purge = harness.store.purgeExpired({ batchSize: 500 }).finally(() => (purging = false));
      let index = 0;
      // A few clients keep claiming new keys (claim, then complete) for as long as the purge runs.
      const client = async () => {
        const outcomes: boolean[] = [];
        while (purging || outcomes.length < 5) {
          const result = await harness.store.claim(claimOf(`live-${index++}`));
          outcomes.push(result.state === 'acquired' && (await harness.store.complete(result.lease, response, 3_600_000)));
        }
        return outcomes;
      };
      const clients = Promise.all([client(), client(), client(), client()]);

      expect(await purge).toBe(EXPIRED);
      const outcomes = (await clients).flat();
      expect(outcomes.every(Boolean)).toBe(true);
      const purgeStatements = statements.filter((event) => event.operation === 'purge').length;
      expect(purgeStatements).toBeGreaterThanOrEqual(EXPIRED / 500);
      // Claims ran between the purge's batches, not only after it.
      const firstPurge = statements.findIndex((event) => event.operation === 'purge');
      const lastPurge = statements.map((event) => event.operation).lastIndexOf('purge');
      expect(statements.slice(firstPurge, lastPurge).some((event) => event.operation === 'claim')).toBe(true);

      expect(await rows()).toBe(2 + outcomes.length);
      const survivors = await harness.dataSource.query(`SELECT lookup_hash FROM idempotency_records WHERE namespace = 'seed' ORDER BY lookup_hash`);
      expect(survivors.map((row: { lookup_hash: string }) => row.lookup_hash)).toEqual(['live-done', 'live-lease']);
      expect(await harness.store.purgeExpired()).toBe(0);
    });

    if (target.dialect !== 'postgres') return;

    it('purges on one instance at a time when exclusive (advisory lock)', async () => {
      await harness.dataSource.query(
        `INSERT INTO idempotency_records (lookup_hash, namespace, scope, idempotency_key, fingerprint, status, fence, attempts, expires_at, request_method, request_path, created_at, updated_at)
         SELECT 'x' || i, 'seed', '', 'x' || i, 'f', 'completed', 1, 1, 0, 'POST', '/', 0, 0 FROM generate_series(1, 10) AS s(i)`,
      );
      const other = new pg.Client({ connectionString: (harness.dataSource.options as { url: string }).url });
      await other.connect();
      try {
        // Another instance is purging: it holds the lock for its batch's transaction.
        await other.query('BEGIN');
        await other.query(`SELECT pg_advisory_xact_lock(hashtext('nest-resilience:purge:idempotency_records'))`);
        expect(await harness.store.purgeExpired({ exclusive: true })).toBe(0);
        await other.query('COMMIT');
        expect(await harness.store.purgeExpired({ exclusive: true })).toBe(10);
      } finally {
        await other.end();
      }
    });
  });
}

describe('startPurger', () => {
  it('purges every interval, never overlapping runs, until stopped', async () => {
    const clock = new FakeClock();
    const store = new InMemoryIdempotencyStore({ clock });
    const purge = vi.spyOn(store, 'purgeExpired');
    const purged: number[] = [];
    const stop = startPurger(store, { interval: 1_000, batchSize: 50, clock, onPurged: (n) => purged.push(n) });

    const claim = { ...claimOf('k'), ttlMs: 500 };
    const claimed = await store.claim(claim);
    if (claimed.state === 'acquired') await store.complete(claimed.lease, response, 500);
    await clock.advance(999);
    expect(purge).not.toHaveBeenCalled();
    await clock.advance(1);
    expect(purge).toHaveBeenCalledTimes(1);
    expect(purge).toHaveBeenCalledWith({ batchSize: 50, exclusive: true });
    expect(purged).toEqual([1]);
    await clock.advance(3_000);
    expect(purge).toHaveBeenCalledTimes(4);

    await stop();
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10_000);
    expect(purge).toHaveBeenCalledTimes(4);
  });

  it('keeps running after a failed purge and reports the error', async () => {
    const clock = new FakeClock();
    const store = new InMemoryIdempotencyStore({ clock });
    const failure = new Error('database down');
    vi.spyOn(store, 'purgeExpired').mockRejectedValueOnce(failure).mockResolvedValue(0);
    const errors: unknown[] = [];
    const stop = startPurger(store, { interval: 100, clock, onError: (error) => errors.push(error) });
    await clock.advance(200);
    expect(errors).toEqual([failure]);
    expect(store.purgeExpired).toHaveBeenCalledTimes(2);
    await stop();
  });

  it('refuses a non-positive interval', () => {
    expect(() => startPurger(new InMemoryIdempotencyStore(), { interval: 0 })).toThrow(/interval must be a positive number/);
  });
});
