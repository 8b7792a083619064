import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import type { IdempotencyClaim, IdempotencyStore } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../support/postgres.js';
import type { ThrowawayPostgres } from '../../scripts/postgres.mjs';


const CONNECT_TIMEOUT_MS = 1_000;
const response = { status: 201, headers: {}, body: '{}', bodyEncoding: 'json' as const };
let keys = 0;
const claimOf = (): IdempotencyClaim => ({
  namespace: 'outage',
  scope: '',
  key: `key-${keys++}`,
  fingerprint: 'f'.repeat(64),
  method: 'POST',
  path: '/orders',
  leaseMs: 60_000,
  ttlMs: 60_000,
});

/** Settles with the operation's outcome, or 'hung' when it takes far longer than the connect timeout. */
async function outcomeOf(operation: Promise<unknown>): Promise<'resolved' | 'rejected' | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), CONNECT_TIMEOUT_MS * 4)));
  try {
    return await Promise.race([operation.then(() => 'resolved' as const, () => 'rejected' as const), hung]);
  } finally {
    clearTimeout(timer);
  }
}

async function claimAndComplete(store: IdempotencyStore): Promise<void> {
  const claim = claimOf();
  const result = await store.claim(claim);
  if (result.state !== 'acquired') throw new Error(`expected acquired, got ${result.state}`);
  expect(await store.complete(result.lease, response, 60_000)).toBe(true);
  expect(await store.claim(claim)).toMatchObject({ state: 'completed', sameRequest: true });
}

// Stops and restarts a PostgreSQL server of its own (never the shared one).
describe.skipIf(!hasPostgres)('TypeOrmIdempotencyStore through a PostgreSQL outage', () => {
  let own: OwnPostgres;
  let postgres: ThrowawayPostgres;
  let dataSource: DataSource;
  let store: TypeOrmIdempotencyStore;

  beforeAll(async () => {
    own = await startOwnPostgres([IdempotencyRecord], { poolSize: 5, connectTimeoutMs: CONNECT_TIMEOUT_MS, queryTimeoutMs: 5_000 });
    ({ server: postgres, dataSource } = own);
    store = new TypeOrmIdempotencyStore(dataSource);
  });
  afterAll(() => own?.close());

  it('works, fails fast while the server is down, and works again once it is back, with the same DataSource', async () => {
    await claimAndComplete(store);
    // Keep a lease across the outage: its owner must still be able to finish afterwards.
    const survivor = claimOf();
    const held = await store.claim(survivor);
    if (held.state !== 'acquired') throw new Error('expected acquired');

    // The throwaway server runs with synchronous_commit=off: flush so the crash-stop loses nothing.
    await dataSource.query('CHECKPOINT');
    postgres.halt();
    try {
      expect(await outcomeOf(store.claim(claimOf()))).toBe('rejected');
      expect(await outcomeOf(store.complete(held.lease, response, 60_000))).toBe('rejected');
      expect(await outcomeOf(store.heartbeat(held.lease, 60_000))).toBe('rejected');
      expect(await outcomeOf(store.ping())).toBe('rejected');
      expect(await outcomeOf(store.purgeExpired())).toBe('rejected');
      let ran = false;
      const transactional = store.runInTransaction(claimOf(), async () => {
        ran = true;
        return { action: 'store', response, value: 1 };
      });
      expect(await outcomeOf(transactional)).toBe('rejected');
      expect(ran).toBe(false);
    } finally {
      postgres.start();
    }

    await claimAndComplete(store);
    await expect(store.ping()).resolves.toBeUndefined();
    expect(await store.complete(held.lease, response, 60_000)).toBe(true);
    expect(await store.claim(survivor)).toMatchObject({ state: 'completed', sameRequest: true });
    const transactional = await store.runInTransaction(claimOf(), async () => ({ action: 'store', response, value: 'after outage' }));
    expect(transactional).toEqual({ state: 'executed', value: 'after outage' });
  });
});
