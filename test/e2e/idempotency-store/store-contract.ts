import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  recordIdOf,
  type IdempotencyClaim,
  type IdempotencyClaimResult,
  type IdempotencyLease,
  type IdempotencyStore,
  type StoredResponse,
  type TransactionalOutcome,
  type TransactionalResult,
} from 'nest-resilience/core';

/** What the contract needs around a store under test. */
export interface StoreHarness {
  readonly store: IdempotencyStore;
  /**
   * Lets the store's clock move by at least `ms`: `FakeClock.advance` for the memory store, a real
   * wait for SQL stores (their clock is the database server's, which only real time moves).
   */
  pass(ms: number): Promise<void>;
  /** A lease or retention short enough to let expire with {@link pass} (real ms on SQL stores). */
  readonly shortMs: number;
  /** Business table for transactional mode (stores with `runInTransaction` only). */
  readonly business?: {
    insert(transaction: unknown, id: string): Promise<void>;
    count(): Promise<number>;
  };
  close(): Promise<void>;
}

const LONG_MS = 60_000;
/** Longest a transactional run is held open by a test (a safety valve, never reached by a passing store). */
const HOLD_LIMIT_MS = 3_000;
const DAY_MS = 86_400_000;

const response: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json; charset=utf-8', location: '/reports/42', etag: '"v1"' },
  body: JSON.stringify({ id: 42, title: 'Ünïcødé ✓', nested: { list: [1, 2, 3] } }),
  bodyEncoding: 'json',
};

let keys = 0;
/** A claim of a fresh key (lease and retention long enough never to end during a test). */
export function claimOf(overrides: Partial<IdempotencyClaim> = {}): IdempotencyClaim {
  return {
    namespace: 'contract',
    scope: 'tenant-a',
    key: `key-${randomBytes(6).toString('hex')}-${keys++}`,
    fingerprint: 'a'.repeat(64),
    method: 'POST',
    path: '/reports',
    leaseMs: LONG_MS,
    ttlMs: DAY_MS,
    ...overrides,
  };
}

async function acquire(store: IdempotencyStore, claim: IdempotencyClaim): Promise<IdempotencyLease> {
  const result = await store.claim(claim);
  if (result.state !== 'acquired') throw new Error(`expected to acquire ${claim.key}, got ${JSON.stringify(result)}`);
  return result.lease;
}

/**
 * The behaviour every {@link IdempotencyStore} must have (the state machine its JSDoc describes:
 * claim, heartbeat, complete, release). Runs against memory, SQLite and PostgreSQL.
 */
export function describeIdempotencyStoreContract(
  name: string,
  factory: () => Promise<StoreHarness>,
  options: {
    skip?: boolean;
    transactional?: boolean;
    /**
     * Retention is the store's own expiry (Redis key TTL): a record is gone the moment its
     * retention ends, so a reused key starts again at fence 1 (as after a purge) and
     * `purgeExpired` finds nothing left to delete.
     */
    expiresByItself?: boolean;
  } = {},
): void {
  describe.skipIf(Boolean(options.skip))(`IdempotencyStore contract: ${name}`, () => {
    let harness: StoreHarness;
    let store: IdempotencyStore;

    beforeAll(async () => {
      harness = await factory();
      store = harness.store;
    });
    afterAll(async () => {
      await harness?.close();
    });

    it('acquires a new key with fence 1 and the record id derived from namespace, scope and key', async () => {
      const claim = claimOf();
      const result = await store.claim(claim);
      expect(result).toMatchObject({ state: 'acquired', takeover: false, lease: { fence: 1, recordId: recordIdOf(claim.namespace, claim.scope, claim.key) } });
      if (result.state === 'acquired') expect(result.lease.owner).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('reports a duplicate of a live claim as in progress with the remaining lease', async () => {
      const claim = claimOf();
      await acquire(store, claim);
      const duplicate = await store.claim(claim);
      expect(duplicate).toMatchObject({ state: 'in_progress', sameRequest: true });
      if (duplicate.state !== 'in_progress') return;
      expect(duplicate.retryAfterMs).toBeGreaterThan(0);
      expect(duplicate.retryAfterMs).toBeLessThanOrEqual(LONG_MS);
    });

    it('replays the exact stored response to the same request after complete', async () => {
      const claim = claimOf();
      const lease = await acquire(store, claim);
      expect(await store.complete(lease, response, DAY_MS)).toBe(true);
      const replay = await store.claim(claim);
      expect(replay).toEqual({ state: 'completed', sameRequest: true, response });
    });

    it('keeps empty and text bodies exactly', async () => {
      const empty: StoredResponse = { status: 204, headers: {}, body: null, bodyEncoding: 'empty' };
      const text: StoredResponse = { status: 200, headers: { 'content-type': 'text/plain' }, body: 'line 1\nline "2" \u0000 ✓', bodyEncoding: 'text' };
      for (const stored of [empty, text]) {
        const claim = claimOf();
        await store.complete(await acquire(store, claim), stored, DAY_MS);
        expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response: stored });
      }
    });

    it('tells another request with the same key apart (sameRequest false), in progress and completed', async () => {
      const claim = claimOf();
      const other = { ...claim, fingerprint: 'b'.repeat(64) };
      const lease = await acquire(store, claim);
      expect(await store.claim(other)).toMatchObject({ state: 'in_progress', sameRequest: false });
      await store.complete(lease, response, DAY_MS);
      expect(await store.claim(other)).toEqual({ state: 'completed', sameRequest: false, response });
    });

    it('keeps keys of other scopes and namespaces apart', async () => {
      const claim = claimOf();
      await acquire(store, claim);
      expect((await store.claim({ ...claim, scope: 'tenant-b' })).state).toBe('acquired');
      expect((await store.claim({ ...claim, scope: '' })).state).toBe('acquired');
      expect((await store.claim({ ...claim, namespace: 'other-app' })).state).toBe('acquired');
    });

    it('frees the key on release; a second release or a late complete changes nothing', async () => {
      const claim = claimOf();
      const lease = await acquire(store, claim);
      expect(await store.release(lease)).toBe(true);
      expect(await store.release(lease)).toBe(false);
      expect(await store.complete(lease, response, DAY_MS)).toBe(false);
      expect(await store.heartbeat(lease, LONG_MS)).toBe(false);
      const again = await store.claim(claim);
      expect(again).toMatchObject({ state: 'acquired', takeover: false });
    });

    it('completes only once: a second complete of the same lease returns false and keeps the first response', async () => {
      const claim = claimOf();
      const lease = await acquire(store, claim);
      expect(await store.complete(lease, response, DAY_MS)).toBe(true);
      expect(await store.complete(lease, { ...response, status: 500 }, DAY_MS)).toBe(false);
      expect(await store.release(lease)).toBe(false);
      expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
    });

    it('lets the same request take over an expired lease (fence + 1); the stale owner can no longer write', async () => {
      const claim = claimOf({ leaseMs: harness.shortMs });
      const stale = await acquire(store, claim);
      await harness.pass(harness.shortMs + 50);
      const takeover = await store.claim({ ...claim, leaseMs: LONG_MS });
      expect(takeover).toMatchObject({ state: 'acquired', takeover: true, lease: { fence: stale.fence + 1, recordId: stale.recordId } });
      if (takeover.state !== 'acquired') return;
      expect(takeover.lease.owner).not.toBe(stale.owner);

      expect(await store.heartbeat(stale, LONG_MS)).toBe(false);
      expect(await store.complete(stale, { ...response, status: 200, body: '"stale"' }, DAY_MS)).toBe(false);
      expect(await store.release(stale)).toBe(false);
      // The new owner still holds the key, untouched by the stale writes.
      expect(await store.claim(claim)).toMatchObject({ state: 'in_progress', sameRequest: true });
      expect(await store.heartbeat(takeover.lease, LONG_MS)).toBe(true);
      expect(await store.complete(takeover.lease, response, DAY_MS)).toBe(true);
      expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
    });

    it('never hands an expired lease to a different request', async () => {
      const claim = claimOf({ leaseMs: harness.shortMs });
      const owner = await acquire(store, claim);
      await harness.pass(harness.shortMs + 50);
      const other = await store.claim({ ...claim, fingerprint: 'c'.repeat(64) });
      expect(other).toMatchObject({ state: 'in_progress', sameRequest: false });
      // Not taken over: the (late) owner can still finish.
      expect(await store.complete(owner, response, DAY_MS)).toBe(true);
    });

    it('keeps a lease alive with heartbeat', async () => {
      const claim = claimOf({ leaseMs: harness.shortMs });
      const lease = await acquire(store, claim);
      expect(await store.heartbeat(lease, LONG_MS)).toBe(true);
      await harness.pass(harness.shortMs + 50);
      expect(await store.claim(claim)).toMatchObject({ state: 'in_progress', sameRequest: true });
    });

    it('frees a completed key once its retention ended, for any request (fence + 1, not a takeover)', async () => {
      const claim = claimOf();
      const first = await acquire(store, claim);
      await store.complete(first, response, harness.shortMs);
      await harness.pass(harness.shortMs + 50);
      const reused = await store.claim({ ...claim, fingerprint: 'd'.repeat(64) });
      expect(reused).toMatchObject({ state: 'acquired', takeover: false, lease: { fence: options.expiresByItself ? 1 : first.fence + 1 } });
    });

    it('purges expired records (completed and abandoned) and keeps live ones', async () => {
      await store.purgeExpired();
      const expiredDone = claimOf();
      await store.complete(await acquire(store, expiredDone), response, harness.shortMs);
      const abandoned = claimOf({ leaseMs: harness.shortMs, ttlMs: harness.shortMs });
      await acquire(store, abandoned);
      await harness.pass(harness.shortMs + 50);
      const liveDone = claimOf();
      await store.complete(await acquire(store, liveDone), response, DAY_MS);
      const liveClaim = claimOf();
      await acquire(store, liveClaim);

      expect(await store.purgeExpired({ batchSize: 1 })).toBe(options.expiresByItself ? 0 : 2);
      expect(await store.claim(liveDone)).toEqual({ state: 'completed', sameRequest: true, response });
      expect(await store.claim(liveClaim)).toMatchObject({ state: 'in_progress' });
      expect(await store.claim(abandoned)).toMatchObject({ state: 'acquired', lease: { fence: 1 } });
    });

    it('gives exactly one of 50 concurrent claims of one key', async () => {
      const claim = claimOf();
      const results = await Promise.all(Array.from({ length: 50 }, () => store.claim(claim)));
      expect(results.filter((result) => result.state === 'acquired')).toHaveLength(1);
      for (const result of results.filter((r) => r.state !== 'acquired')) {
        expect(result).toMatchObject({ state: 'in_progress', sameRequest: true });
      }
    });

    it('gives exactly one of 50 concurrent takeovers of one expired lease', async () => {
      const claim = claimOf({ leaseMs: harness.shortMs });
      await acquire(store, claim);
      await harness.pass(harness.shortMs + 50);
      const results = await Promise.all(Array.from({ length: 50 }, () => store.claim({ ...claim, leaseMs: LONG_MS })));
      const winners = results.filter((result) => result.state === 'acquired');
      expect(winners).toHaveLength(1);
      expect(winners[0]).toMatchObject({ takeover: true, lease: { fence: 2 } });
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    if (options.transactional === false) return;

    describe('transactional mode', () => {
      const skip = () => !harness.store.runInTransaction || !harness.business;
      const businessId = () => randomBytes(8).toString('hex');

      /**
       * Starts a transactional run of `claim` that runs `before` (which may throw to roll back) and
       * then stays open until `release()`. `beforeRelease(p)` resolves with p's answer only if p
       * settles while the run is still open; otherwise it rejects. The run is released after
       * {@link HOLD_LIMIT_MS} at the latest, so a store that makes duplicates wait fails the test
       * with a clear message instead of hanging it.
       */
      function holdOpen(claim: IdempotencyClaim, before: (transaction: unknown) => Promise<void>) {
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let markStarted!: () => void;
        const started = new Promise<void>((resolve) => (markStarted = resolve));
        const limit = setTimeout(release, HOLD_LIMIT_MS);
        const result = store.runInTransaction!(claim, async (transaction): Promise<TransactionalOutcome<number>> => {
          markStarted();
          try {
            await before(transaction);
          } finally {
            await released;
          }
          return { action: 'store', response, value: 1 };
        });
        const wasReleased = Symbol('released');
        const releasedMarker = released.then(() => wasReleased);
        return {
          started,
          result,
          release() {
            clearTimeout(limit);
            release();
          },
          async beforeRelease<R>(answer: Promise<R>): Promise<R> {
            const first = await Promise.race([answer, releasedMarker]);
            if (first === wasReleased) throw new Error('The duplicate was answered only after the open run ended: it waited instead of being told "in progress".');
            return first as R;
          },
        };
      }

      it('commits the work and the record together', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        const id = businessId();
        const before = await harness.business!.count();
        const result = await store.runInTransaction!(claim, async (transaction, lease) => {
          expect(lease.fence).toBe(1);
          await harness.business!.insert(transaction, id);
          return { action: 'store', response, value: id } satisfies TransactionalOutcome<string>;
        });
        expect(result).toEqual({ state: 'executed', value: id });
        expect(await harness.business!.count()).toBe(before + 1);
        expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
      });

      it('does not run the work for a completed key', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        await store.complete(await acquire(store, claim), response, DAY_MS);
        let ran = false;
        const result = await store.runInTransaction!(claim, async () => {
          ran = true;
          return { action: 'store', response, value: 1 };
        });
        expect(ran).toBe(false);
        expect(result).toEqual({ state: 'completed', sameRequest: true, response });
      });

      it('leaves neither record nor business row when the work throws', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        const before = await harness.business!.count();
        const failure = new Error('handler crashed');
        await expect(
          store.runInTransaction!(claim, async (transaction) => {
            await harness.business!.insert(transaction, businessId());
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await harness.business!.count()).toBe(before);
        expect(await store.claim(claim)).toMatchObject({ state: 'acquired', lease: { fence: 1 } });
      });

      it('rolls back and rethrows on a rollback outcome', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        const before = await harness.business!.count();
        const failure = new Error('503 from upstream');
        await expect(
          store.runInTransaction!(claim, async (transaction) => {
            await harness.business!.insert(transaction, businessId());
            return { action: 'rollback', error: failure };
          }),
        ).rejects.toBe(failure);
        expect(await harness.business!.count()).toBe(before);
        expect((await store.claim(claim)).state).toBe('acquired');
      });

      it('answers a duplicate of an open run "in progress" at once (not after the commit), then replays it', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        const before = await harness.business!.count();
        let executions = 0;
        const first = holdOpen(claim, async (transaction) => {
          executions++;
          await harness.business!.insert(transaction, businessId());
        });
        await first.started;
        const work = async (): Promise<TransactionalOutcome<number>> => {
          executions++;
          return { action: 'store', response, value: executions };
        };
        try {
          const duplicates: Array<Promise<IdempotencyClaimResult | TransactionalResult<number>>> = [store.runInTransaction!(claim, work), store.claim(claim)];
          for (const duplicate of duplicates) {
            const answer = await first.beforeRelease(duplicate);
            expect(answer).toMatchObject({ state: 'in_progress', sameRequest: true });
            if (answer.state === 'in_progress') expect(answer.retryAfterMs).toBeGreaterThan(0);
          }
          // Another request with the key: never run. (SQLite knows it is another request; PostgreSQL
          // cannot see the uncommitted fingerprint and says so on the retry.)
          const other = await first.beforeRelease(store.runInTransaction!({ ...claim, fingerprint: 'e'.repeat(64) }, work));
          expect(other.state).toBe('in_progress');
        } finally {
          first.release();
        }
        expect(await first.result).toEqual({ state: 'executed', value: 1 });
        expect(await store.runInTransaction!(claim, work)).toEqual({ state: 'completed', sameRequest: true, response });
        expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
        expect(await store.claim({ ...claim, fingerprint: 'e'.repeat(64) })).toEqual({ state: 'completed', sameRequest: false, response });
        expect(executions).toBe(1);
        expect(await harness.business!.count()).toBe(before + 1);
      });

      it('replays a completed key to every one of 20 concurrent runs and claims (no false "in progress")', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        await store.runInTransaction!(claim, async () => ({ action: 'store', response, value: 0 }));
        let ran = 0;
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            i % 4 === 3
              ? store.claim(claim)
              : store.runInTransaction!(claim, async () => {
                  ran++;
                  return { action: 'store', response, value: i };
                }),
          ),
        );
        expect(ran).toBe(0);
        for (const result of results) expect(result).toEqual({ state: 'completed', sameRequest: true, response });
      });

      it('frees the key for the retry of a duplicate when the open run rolls back', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf();
        const failure = new Error('rolled back');
        const first = holdOpen(claim, async () => {
          throw failure;
        });
        await first.started;
        try {
          expect(await first.beforeRelease(store.claim(claim))).toMatchObject({ state: 'in_progress' });
        } finally {
          first.release();
        }
        await expect(first.result).rejects.toBe(failure);
        const retry = await store.runInTransaction!(claim, async (_transaction, lease) => ({ action: 'store', response, value: lease.fence }));
        expect(retry).toEqual({ state: 'executed', value: 1 });
      });

      it("keeps other keys' claims made while a transaction is open when that transaction rolls back", async (context) => {
        if (skip()) return context.skip();
        let releaseWork!: () => void;
        const gate = new Promise<void>((resolve) => (releaseWork = resolve));
        let workStarted!: () => void;
        const started = new Promise<void>((resolve) => (workStarted = resolve));
        const failure = new Error('rolled back');
        const transactional = store.runInTransaction!(claimOf(), async () => {
          workStarted();
          await gate;
          throw failure;
        });
        await started;
        const bystander = claimOf();
        const bystanderClaim = store.claim(bystander);
        await new Promise((resolve) => setTimeout(resolve, 50));
        releaseWork();
        await expect(transactional).rejects.toBe(failure);
        const claimed = await bystanderClaim;
        if (claimed.state !== 'acquired') throw new Error(`the bystander should have acquired, got ${claimed.state}`);
        // The bystander's record must still exist and be owned by it.
        expect(await store.claim(bystander)).toMatchObject({ state: 'in_progress', sameRequest: true });
        expect(await store.complete(claimed.lease, response, DAY_MS)).toBe(true);
      });

      it('takes over an expired lease of the same request inside the transaction', async (context) => {
        if (skip()) return context.skip();
        const claim = claimOf({ leaseMs: harness.shortMs });
        const stale = await acquire(store, claim);
        await harness.pass(harness.shortMs + 50);
        const result = await store.runInTransaction!({ ...claim, leaseMs: LONG_MS }, async (_transaction, lease) => ({
          action: 'store',
          response,
          value: lease.fence,
        }));
        expect(result).toEqual({ state: 'executed', value: stale.fence + 1 });
        expect(await store.complete(stale, response, DAY_MS)).toBe(false);
      });
    });
  });
}
