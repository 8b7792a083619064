// TypeOrmIdempotencyStore on a SQLite file whose write lock another connection holds: the store's
// wait is bounded by lockTimeout on the store's clock (a FakeClock here, so only time logic is
// stepped; the database and its lock are real), its queue is bounded, and the app's own
// busy_timeout is left as it configured it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStoreUnavailableError, storeFailureOf } from 'nest-resilience/core';
import { FakeClock, observe } from 'nest-resilience/testing';
import { SqliteLockTimeoutError, SqliteStoreQueueFullError, type IdempotencyQueryEvent, type TypeOrmIdempotencyStoreOptions } from 'nest-resilience/typeorm';
import { sqliteWriteLock, type SqliteWriteLock } from '../../support/sqlite-lock.js';
import { claimOf } from './store-contract.js';
import { ContractBusinessRow, sqliteHarness, type SqlHarness } from './support.js';

const LOCK_TIMEOUT_MS = 1_000;

describe('TypeOrmIdempotencyStore on SQLite while another connection holds the write lock (fake clock)', () => {
  let clock: FakeClock;
  let harness: SqlHarness;
  let lock: SqliteWriteLock;
  let queries: IdempotencyQueryEvent[];

  const open = async (options: TypeOrmIdempotencyStoreOptions = {}) => {
    harness = await sqliteHarness('file', { store: { clock, lockTimeout: LOCK_TIMEOUT_MS, onQuery: (event) => queries.push(event), ...options } });
    lock = sqliteWriteLock(String(harness.dataSource.options.database));
  };
  const busyTimeoutOfApp = async () => Number((await harness.dataSource.query('PRAGMA busy_timeout'))[0].timeout);

  beforeEach(() => {
    clock = new FakeClock();
    queries = [];
  });
  afterEach(async () => {
    lock?.close();
    await harness?.close();
  });

  it('retries a claim without blocking until lockTimeout, then fails it as a store timeout; nothing was written', async () => {
    await open();
    lock.hold();
    const claim = claimOf();
    const started = performance.now();
    const pending = observe(harness.store.claim(claim));
    await clock.advance(LOCK_TIMEOUT_MS - 1);
    expect(pending.settled).toBe(false);
    // retried on the clock (1 ms doubling to 20 ms sleeps): about 55 tries in a second, not one busy wait
    const tries = queries.filter((query) => query.operation === 'claim').length;
    expect(tries).toBeGreaterThan(40);
    expect(tries).toBeLessThan(120);
    await clock.advance(1);
    expect(pending.settled).toBe(true);
    expect(pending.error).toBeInstanceOf(SqliteLockTimeoutError);
    expect(pending.error).toMatchObject({ code: 'ERR_SQLITE_LOCK_TIMEOUT', waitedFor: 'lock', timeoutMs: LOCK_TIMEOUT_MS });
    expect((pending.error as Error).cause).toMatchObject({ code: 'SQLITE_BUSY' });
    expect(storeFailureOf(pending.error)).toBe('timeout');
    // real time: each try returned at once, no statement waited for SQLite's busy timeout
    expect(performance.now() - started).toBeLessThan(1_000);
    // the app's DataSource still has its own busy timeout (the harness sets 5 s)
    expect(await busyTimeoutOfApp()).toBe(5_000);

    lock.release();
    expect((await harness.store.claim(claim)).state).toBe('acquired');
  });

  it('takes the lock as soon as it is released within lockTimeout', async () => {
    await open();
    lock.hold();
    const pending = observe(harness.store.claim(claimOf()));
    await clock.advance(300);
    expect(pending.settled).toBe(false);
    lock.release();
    await clock.advance(20);
    expect(pending.settled).toBe(true);
    expect(pending.value).toMatchObject({ state: 'acquired' });
  });

  it('counts a queued operation’s lockTimeout from when it was queued: it fails at its deadline without running', async () => {
    await open();
    lock.hold();
    const first = observe(harness.store.claim(claimOf()));
    await clock.advance(400);
    const queued = claimOf();
    const second = observe(harness.store.claim(queued));
    const triesBefore = queries.filter((query) => query.operation === 'claim').length;
    await clock.advance(LOCK_TIMEOUT_MS - 400);
    expect(first.error).toMatchObject({ waitedFor: 'lock' });
    // the first operation gave up; the second now waits for the lock, until its own deadline
    expect(second.settled).toBe(false);
    await clock.advance(400);
    expect(second.error).toBeInstanceOf(SqliteLockTimeoutError);
    expect(queries.filter((query) => query.operation === 'claim').length).toBeGreaterThan(triesBefore);
    expect(storeFailureOf(second.error)).toBe('timeout');

    // behind a transactional request in progress (not the lock): refused at its deadline, never run
    lock.release();
    let finish!: () => void;
    const inTransaction = harness.store.runInTransaction(claimOf(), async () => {
      await new Promise<void>((resolve) => (finish = resolve));
      return { action: 'store', value: 1, response: { status: 201, headers: {}, body: '1', bodyEncoding: 'json' } };
    });
    await clock.flush();
    const behind = observe(harness.store.claim(claimOf()));
    await clock.advance(LOCK_TIMEOUT_MS);
    expect(behind.error).toMatchObject({ code: 'ERR_SQLITE_LOCK_TIMEOUT', waitedFor: 'queue' });
    finish();
    expect(await inTransaction).toMatchObject({ state: 'executed', value: 1 });
  });

  it('refuses an operation at once when maxQueuedOperations already wait (503 pool_exhausted)', async () => {
    await open({ maxQueuedOperations: 2 });
    lock.hold();
    const waiting = [observe(harness.store.claim(claimOf())), observe(harness.store.claim(claimOf())), observe(harness.store.claim(claimOf()))];
    const refused = observe(harness.store.claim(claimOf()));
    await clock.flush();
    expect(refused.error).toBeInstanceOf(SqliteStoreQueueFullError);
    expect(storeFailureOf(refused.error)).toBe('pool_exhausted');
    expect(isStoreUnavailableError(refused.error)).toBe(true);
    expect(waiting.some((call) => call.settled)).toBe(false);
    lock.release();
    await clock.advance(20);
    expect(waiting.map((call) => (call.value as { state?: string } | undefined)?.state)).toEqual(['acquired', 'acquired', 'acquired']);
  });

  it('transactional: the work never runs without the lock; at lockTimeout the run fails, rolled back, and the connection is free again', async () => {
    await open();
    lock.hold();
    let ran = 0;
    const claim = claimOf();
    const work = async (manager: unknown) => {
      ran++;
      await harness.business!.insert(manager, claim.key.slice(-32));
      return { action: 'store' as const, value: 'done', response: { status: 201, headers: {}, body: '"done"', bodyEncoding: 'json' as const } };
    };
    const pending = observe(harness.store.runInTransaction(claim, work));
    await clock.advance(LOCK_TIMEOUT_MS);
    expect(pending.error).toBeInstanceOf(SqliteLockTimeoutError);
    expect(ran).toBe(0);
    // each try was a BEGIN, the claim refused busy, a ROLLBACK: no transaction is left open
    expect(queries.filter((query) => query.operation === 'rollback').length).toBeGreaterThan(10);
    expect(harness.dataSource.createQueryRunner().isTransactionActive).toBe(false);

    lock.release();
    expect(await harness.store.runInTransaction(claim, work)).toMatchObject({ state: 'executed', value: 'done' });
    expect(ran).toBe(1);
    expect(await harness.dataSource.getRepository(ContractBusinessRow).count()).toBe(1);
    expect(await harness.store.runInTransaction(claim, work)).toMatchObject({ state: 'completed' });
    expect(ran).toBe(1);
    expect(await busyTimeoutOfApp()).toBe(5_000);
  });
});
