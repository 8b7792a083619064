import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdempotencyClaim } from 'nest-resilience';
import type { IdempotencyQueryEvent, IdempotencyStoreOperation } from 'nest-resilience/typeorm';
import { hasPostgres } from '../support/postgres.js';
import { postgresHarness, sqliteHarness, type SqlHarness } from './support.js';

const response = { status: 200, headers: {}, body: '{}', bodyEncoding: 'json' as const };
let keys = 0;
const claimOf = (): IdempotencyClaim => ({
  namespace: 'trips',
  scope: '',
  key: `key-${keys++}`,
  fingerprint: 'f'.repeat(64),
  method: 'POST',
  path: '/r',
  leaseMs: 60_000,
  ttlMs: 60_000,
});

const targets = [
  { name: 'PostgreSQL', skip: !hasPostgres, open: (onQuery: (e: IdempotencyQueryEvent) => void) => postgresHarness({ store: { onQuery } }), replay: 1, tx: 5 },
  { name: 'SQLite', skip: false, open: (onQuery: (e: IdempotencyQueryEvent) => void) => sqliteHarness('memory', { store: { onQuery } }), replay: 2, tx: 4 },
];

for (const target of targets) {
  describe.skipIf(target.skip)(`database round trips per operation on ${target.name}`, () => {
    let harness: SqlHarness;
    let events: IdempotencyStoreOperation[] = [];
    beforeAll(async () => {
      harness = await target.open((event) => events.push(event.operation));
    });
    afterAll(async () => harness?.close());

    /** The statements `operation` sent. */
    async function tripsOf(operation: () => Promise<unknown>): Promise<IdempotencyStoreOperation[]> {
      events = [];
      await operation();
      return events;
    }

    it('claims a new key in 1, completes in 1, replays in the documented count', async () => {
      const claim = claimOf();
      let lease!: Parameters<typeof harness.store.complete>[0];
      expect(
        await tripsOf(async () => {
          const result = await harness.store.claim(claim);
          if (result.state === 'acquired') lease = result.lease;
        }),
      ).toEqual(['claim']);
      expect(await tripsOf(() => harness.store.claim(claim))).toHaveLength(target.replay);
      expect(await tripsOf(() => harness.store.heartbeat(lease, 60_000))).toEqual(['heartbeat']);
      expect(await tripsOf(() => harness.store.complete(lease, response, 60_000))).toEqual(['complete']);
      expect(await tripsOf(() => harness.store.claim(claim))).toHaveLength(target.replay);
      expect(await tripsOf(() => harness.store.ping())).toEqual(['ping']);
    });

    it('releases in 1', async () => {
      const result = await harness.store.claim(claimOf());
      if (result.state !== 'acquired') throw new Error('expected acquired');
      expect(await tripsOf(() => harness.store.release(result.lease))).toEqual(['release']);
    });

    it('runs a transactional new key in the documented count (plus the work)', async () => {
      const trips = await tripsOf(() => harness.store.runInTransaction(claimOf(), async () => ({ action: 'store', response, value: 1 })));
      expect(trips).toHaveLength(target.tx);
      expect(trips.filter((operation) => operation === 'claim' || operation === 'complete')).toEqual(['claim', 'complete']);
    });
  });
}

describe.skipIf(!hasPostgres)('transactional mode on PostgreSQL: lock timeout', () => {
  let harness: SqlHarness;
  beforeAll(async () => {
    harness = await postgresHarness({ store: { lockTimeout: 200 } });
  });
  afterAll(async () => harness?.close());

  it('answers a duplicate "in progress" after lockTimeout instead of waiting for the first request', async () => {
    const claim = claimOf();
    let releaseFirst!: () => void;
    const gate = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstRunning!: () => void;
    const running = new Promise<void>((resolve) => (firstRunning = resolve));
    const first = harness.store.runInTransaction(claim, async () => {
      firstRunning();
      await gate;
      return { action: 'store', response, value: 'first' };
    });
    await running;
    let duplicateRan = false;
    const duplicate = await harness.store.runInTransaction(claim, async () => {
      duplicateRan = true;
      return { action: 'store', response, value: 'duplicate' };
    });
    expect(duplicate).toMatchObject({ state: 'in_progress', sameRequest: true });
    expect(duplicateRan).toBe(false);
    releaseFirst();
    expect(await first).toEqual({ state: 'executed', value: 'first' });
    expect(await harness.store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
  });
});
