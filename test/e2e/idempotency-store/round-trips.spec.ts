import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { recordIdOf, type IdempotencyClaim, type IdempotencyLease } from 'nest-resilience/core';
import { RedisIdempotencyStore, type RedisStoreClient } from 'nest-resilience/redis';
import { IdempotencyRecord, type IdempotencyQueryEvent, type IdempotencyStoreOperation } from 'nest-resilience/typeorm';
import { hasPostgres } from '../../support/postgres.js';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import { until } from '../idempotency/support.js';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';
import { postgresHarness, sleep, sqliteHarness, type SqlHarness } from './support.js';

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
  // openRunDuplicate: a runInTransaction / claim of a key whose transactional run is still open.
  {
    name: 'PostgreSQL',
    skip: !hasPostgres,
    open: (onQuery: (e: IdempotencyQueryEvent) => void) => postgresHarness({ store: { onQuery } }),
    // PostgreSQL returns the existing row from the claim statement itself (a CTE).
    answer: ['claim'],
    tx: 5,
    openRunDuplicate: { transactional: ['begin', 'begin', 'claim', 'rollback'], claim: ['claim'] },
  },
  {
    name: 'SQLite',
    skip: false,
    open: (onQuery: (e: IdempotencyQueryEvent) => void) => sqliteHarness('memory', { store: { onQuery } }),
    // SQLite cannot nest the upsert in a CTE: a claim that finds the key taken reads it (an
    // in-process call, no write) rather than rewriting the row (which would write a WAL page per replay).
    answer: ['claim', 'read'],
    tx: 4,
    openRunDuplicate: { transactional: [], claim: [] },
  },
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

    it('claims a new key in 1, completes in 1, answers a taken key (in progress, replay) in the documented count', async () => {
      const claim = claimOf();
      let lease!: Parameters<typeof harness.store.complete>[0];
      expect(
        await tripsOf(async () => {
          const result = await harness.store.claim(claim);
          if (result.state === 'acquired') lease = result.lease;
        }),
      ).toEqual(['claim']);
      const inProgress = await tripsOf(async () => expect(await harness.store.claim(claim)).toMatchObject({ state: 'in_progress', sameRequest: true }));
      expect(inProgress).toEqual(target.answer);
      const mismatch = await tripsOf(async () => expect(await harness.store.claim({ ...claim, fingerprint: 'e'.repeat(64) })).toMatchObject({ state: 'in_progress', sameRequest: false }));
      expect(mismatch).toEqual(target.answer);
      expect(await tripsOf(() => harness.store.heartbeat(lease, 60_000))).toEqual(['heartbeat']);
      expect(await tripsOf(() => harness.store.complete(lease, response, 60_000))).toEqual(['complete']);
      const replay = await tripsOf(async () => expect(await harness.store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response }));
      expect(replay).toEqual(target.answer);
      expect(await tripsOf(() => harness.store.ping())).toEqual(['ping']);
    });

    it('leaves a record no claim may take exactly as it was (live lease, live response, expired lease of another request)', async () => {
      const rowOf = (claim: IdempotencyClaim) =>
        harness.dataSource.getRepository(IdempotencyRecord).findOneByOrFail({ lookupHash: recordIdOf(claim.namespace, claim.scope, claim.key) });
      const other = (claim: IdempotencyClaim): IdempotencyClaim => ({ ...claim, fingerprint: 'e'.repeat(64) });

      const live = claimOf();
      const lease = await harness.store.claim(live);
      if (lease.state !== 'acquired') throw new Error('expected acquired');
      const leased = await rowOf(live);
      expect(await harness.store.claim(live)).toMatchObject({ state: 'in_progress', sameRequest: true });
      expect(await harness.store.claim(other(live))).toMatchObject({ state: 'in_progress', sameRequest: false });
      expect(await rowOf(live)).toEqual(leased);

      await harness.store.complete(lease.lease, response, 60_000);
      const completed = await rowOf(live);
      expect(await harness.store.claim(live)).toMatchObject({ state: 'completed', sameRequest: true });
      expect(await harness.store.claim(other(live))).toMatchObject({ state: 'completed', sameRequest: false });
      expect(await rowOf(live)).toEqual(completed);

      const crashed = { ...claimOf(), leaseMs: 20 };
      expect(await harness.store.claim(crashed)).toMatchObject({ state: 'acquired' });
      const abandoned = await rowOf(crashed);
      await sleep(40);
      expect(await harness.store.claim(other(crashed))).toMatchObject({ state: 'in_progress', sameRequest: false });
      expect(await rowOf(crashed)).toEqual(abandoned);
      // The same request still takes it over, in the same single statement.
      expect(await tripsOf(async () => expect(await harness.store.claim(crashed)).toMatchObject({ state: 'acquired', takeover: true, lease: { fence: 2 } }))).toEqual([
        'claim',
      ]);
    });

    if (target.name === 'PostgreSQL') {
      it('writes nothing to answer a replay or a live lease: the row is not even locked (xmax stays 0), so a durable commit has nothing to flush', async () => {
        const xmaxOf = async (claim: IdempotencyClaim) =>
          Number((await harness.dataSource.query('SELECT xmax::text::bigint AS xmax FROM idempotency_records WHERE lookup_hash = $1', [recordIdOf(claim.namespace, claim.scope, claim.key)]))[0].xmax);
        const claim = claimOf();
        const result = await harness.store.claim(claim);
        if (result.state !== 'acquired') throw new Error('expected acquired');
        expect(await harness.store.claim(claim)).toMatchObject({ state: 'in_progress' });
        expect(await xmaxOf(claim)).toBe(0);
        await harness.store.complete(result.lease, response, 60_000);
        expect(await xmaxOf(claim)).toBe(0);
        expect(await harness.store.claim(claim)).toMatchObject({ state: 'completed', sameRequest: true });
        expect(await harness.store.claim({ ...claim, fingerprint: 'e'.repeat(64) })).toMatchObject({ state: 'completed', sameRequest: false });
        expect(await xmaxOf(claim)).toBe(0);
      });
    }

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

    it('answers a duplicate of an open transactional run in the documented count', async () => {
      const claim = claimOf();
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let markStarted!: () => void;
      const started = new Promise<void>((resolve) => (markStarted = resolve));
      const first = harness.store.runInTransaction(claim, async () => {
        markStarted();
        await released;
        return { action: 'store', response, value: 1 };
      });
      try {
        await started;
        const transactional = await tripsOf(async () => {
          expect(await harness.store.runInTransaction(claim, async () => ({ action: 'store', response, value: 2 }))).toMatchObject({ state: 'in_progress' });
        });
        expect(transactional).toEqual(target.openRunDuplicate.transactional);
        const claimed = await tripsOf(async () => expect(await harness.store.claim(claim)).toMatchObject({ state: 'in_progress' }));
        expect(claimed).toEqual(target.openRunDuplicate.claim);
      } finally {
        release();
      }
      expect(await first).toEqual({ state: 'executed', value: 1 });
    });
  });
}

describe.skipIf(!hasPostgres)('transactional mode on PostgreSQL: lock timeout', () => {
  let harness: SqlHarness;
  beforeAll(async () => {
    harness = await postgresHarness({ store: { lockTimeout: 200 } });
  });
  afterAll(async () => harness?.close());

  it('still bounds a wait for a row lock that is not an open run of the store: "in progress" after lockTimeout', async () => {
    const claim = claimOf();
    // Another transaction writes the record without the store's advisory lock (the app, a script):
    // the claim's INSERT must wait on its uncommitted unique entry, and only lockTimeout ends that.
    const intruder = harness.dataSource.createQueryRunner();
    await intruder.startTransaction();
    try {
      await intruder.manager.insert(IdempotencyRecord, {
        lookupHash: recordIdOf(claim.namespace, claim.scope, claim.key),
        namespace: claim.namespace,
        scope: claim.scope,
        idempotencyKey: claim.key,
        fingerprint: claim.fingerprint,
        status: 'in_progress',
        ownerToken: '00000000-0000-4000-8000-000000000000',
        lockedUntil: 0,
        expiresAt: 0,
        requestMethod: 'POST',
        requestPath: '/r',
        createdAt: 0,
        updatedAt: 0,
      });
      let ran = false;
      const duplicate = await harness.store.runInTransaction(claim, async () => {
        ran = true;
        return { action: 'store', response, value: 'duplicate' };
      });
      expect(duplicate).toEqual({ state: 'in_progress', sameRequest: true, retryAfterMs: 1_000 });
      expect(ran).toBe(false);
    } finally {
      await intruder.rollbackTransaction();
      await intruder.release();
    }
    expect(await harness.store.runInTransaction(claim, async () => ({ action: 'store', response, value: 'after' }))).toEqual({ state: 'executed', value: 'after' });
  });
});

describe.skipIf(!hasRedis)('Redis round trips per operation, counted by MONITOR on a server of its own', () => {
  let server: ThrowawayRedis;
  let client: Redis;
  let observer: Redis;
  let monitor: Redis;
  let nodeClient: ReturnType<typeof createClient>;
  /** A store per client library, and its connection as MONITOR names it (`ip:port`). */
  const stores = new Map<'ioredis' | 'node-redis', { store: RedisIdempotencyStore<RedisStoreClient>; source: string }>();
  let seen: Array<{ source: string; command: string[] }> = [];

  beforeAll(async () => {
    server = await startOwnRedis();
    client = new Redis(server.url, { enableOfflineQueue: false, lazyConnect: true });
    await client.connect();
    nodeClient = await createClient({ url: server.url, disableOfflineQueue: true }).connect();
    observer = new Redis(server.url);
    monitor = await observer.duplicate().monitor();
    monitor.on('monitor', (_time: string, command: string[], from: string) => seen.push({ source: from, command }));
    const addressOf = (info: unknown) => /addr=(\S+)/.exec(String(info))![1];
    stores.set('ioredis', { store: new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('trips') }), source: addressOf(await client.client('INFO')) });
    stores.set('node-redis', {
      store: new RedisIdempotencyStore({ client: nodeClient, keyPrefix: testKeyPrefix('trips') }),
      source: addressOf(await nodeClient.sendCommand(['CLIENT', 'INFO'])),
    });
    // A fresh server does not know the scripts yet: their first use is the one EVAL (tested below).
    const { store } = stores.get('ioredis')!;
    for (const finish of ['complete', 'release'] as const) {
      const warm = await store.claim(claimOf());
      if (warm.state !== 'acquired') throw new Error('expected acquired');
      await store.heartbeat(warm.lease, 60_000);
      await (finish === 'complete' ? store.complete(warm.lease, response, 60_000) : store.release(warm.lease));
    }
  });
  afterAll(async () => {
    monitor?.disconnect();
    observer?.disconnect();
    client?.disconnect();
    nodeClient?.destroy();
    await server?.stop();
  });

  /** Waits until MONITOR has reported everything executed so far (it reports in execution order). */
  async function drained(): Promise<void> {
    const marker = `marker-${keys++}`;
    await observer.echo(marker);
    await until(() => seen.some((entry) => entry.command[1] === marker), 5_000, 'MONITOR to report the marker');
  }

  /** The commands the connection at `source` sent while `operation` ran. */
  async function sent(source: string, operation: () => Promise<unknown>): Promise<string[]> {
    await drained();
    seen = [];
    await operation();
    await drained();
    return seen.filter((entry) => entry.source === source).map((entry) => entry.command[0].toLowerCase());
  }

  it.each(['ioredis', 'node-redis'] as const)('a new key costs 2 round trips (claim + complete) and a replay 1; every other operation 1 (%s)', async (library) => {
    const { store, source } = stores.get(library)!;
    const commandsOf = (operation: () => Promise<unknown>) => sent(source, operation);
    const claim = claimOf();
    let lease!: IdempotencyLease;
    expect(
      await commandsOf(async () => {
        const result = await store.claim(claim);
        if (result.state !== 'acquired') throw new Error(`expected acquired, got ${result.state}`);
        lease = result.lease;
      }),
    ).toEqual(['evalsha']);
    expect(await commandsOf(async () => expect(await store.claim(claim)).toMatchObject({ state: 'in_progress', sameRequest: true }))).toEqual(['evalsha']);
    expect(await commandsOf(async () => expect(await store.claim({ ...claim, fingerprint: 'e'.repeat(64) })).toMatchObject({ state: 'in_progress', sameRequest: false }))).toEqual(['evalsha']);
    expect(await commandsOf(() => store.heartbeat(lease, 60_000))).toEqual(['evalsha']);
    expect(await commandsOf(() => store.complete(lease, response, 60_000))).toEqual(['evalsha']);
    expect(await commandsOf(async () => expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response }))).toEqual(['evalsha']);
    expect(await commandsOf(() => store.ping())).toEqual(['ping']);
    expect(await commandsOf(() => store.purgeExpired())).toEqual([]);

    const released = await store.claim(claimOf());
    if (released.state !== 'acquired') throw new Error('expected acquired');
    expect(await commandsOf(() => store.release(released.lease))).toEqual(['evalsha']);
  });

  it.each(['ioredis', 'node-redis'] as const)('after the server lost its script cache, one extra EVAL, then EVALSHA again (%s)', async (library) => {
    const { store, source } = stores.get(library)!;
    const commandsOf = (operation: () => Promise<unknown>) => sent(source, operation);
    await observer.script('FLUSH');
    expect(await commandsOf(() => store.claim(claimOf()))).toEqual(['evalsha', 'eval']);
    expect(await commandsOf(() => store.claim(claimOf()))).toEqual(['evalsha']);
  });

  it('keeps a completed record in one hash of about 1 KB plus the response, expiring with the retention', async () => {
    const { store } = stores.get('ioredis')!;
    const claim = claimOf();
    const result = await store.claim(claim);
    if (result.state !== 'acquired') throw new Error('expected acquired');
    const body = JSON.stringify({ text: 'x'.repeat(4_000) });
    await store.complete(result.lease, { ...response, body }, 60_000);
    const key = store.keyPrefix + result.lease.recordId;
    expect(await observer.keys(`${store.keyPrefix}*`)).toContain(key);
    expect(await observer.type(key)).toBe('hash');
    // SAMPLES 0: every field counted (by default Redis estimates a large hash from 5 of its fields)
    const bytes = Number(await observer.memory('USAGE', key, 'SAMPLES', 0));
    expect(bytes).toBeGreaterThan(body.length);
    expect(bytes).toBeLessThan(body.length * 1.3 + 1_024);
    const ttl = await observer.pttl(key);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});
