import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { storeFailureOf, type IdempotencyClaim, type IdempotencyStore } from 'nest-resilience/core';
import { RedisIdempotencyStore, RedisStoreUnavailableError, type RedisStoreClient } from 'nest-resilience/redis';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../../support/postgres.js';
import { hasRedis, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import { until } from '../idempotency/support.js';
import type { ThrowawayPostgres } from '../../../scripts/postgres.mjs';
import type { ThrowawayRedis } from '../../../scripts/redis.mjs';


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

/** Every error `operation` rejects with, or 'resolved' / 'hung' (far past the store's bound). */
async function failureOf(operation: Promise<unknown>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), REDIS_COMMAND_TIMEOUT_MS * 4)));
  try {
    return await Promise.race([operation.then(() => 'resolved' as const, (error: unknown) => error), hung]);
  } finally {
    clearTimeout(timer);
  }
}

const REDIS_COMMAND_TIMEOUT_MS = 1_000;

// Stops and restarts a redis-server of its own (never the shared one). The throwaway server keeps
// nothing on disk, so a restart also empties it.
describe.skipIf(!hasRedis)('RedisIdempotencyStore through a Redis outage', () => {
  let redis: ThrowawayRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(() => redis?.stop());

  /** A store on the outage server, how to tell that its client saw the connection drop, and clean-up. */
  interface Variant {
    readonly store: RedisIdempotencyStore<RedisStoreClient>;
    readonly disconnected: () => boolean;
    readonly close: () => Promise<void>;
  }
  const options = () => ({ keyPrefix: testKeyPrefix('outage'), commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS });
  const variants: ReadonlyArray<{ name: string; open: () => Promise<Variant> }> = [
    {
      // The store's own connection (no offline queue, nothing resent).
      name: 'connection opened from url',
      open: async () => {
        const store = new RedisIdempotencyStore({ url: redis.url, ...options() });
        return { store, disconnected: () => store.client.status !== 'ready', close: async () => undefined };
      },
    },
    {
      // An app's client with ioredis' defaults: offline queue on, 20 retries per request.
      name: 'app client with ioredis defaults',
      open: async () => {
        const client = new Redis(redis.url);
        return { store: new RedisIdempotencyStore({ client, ...options() }), disconnected: () => client.status !== 'ready', close: async () => client.disconnect() };
      },
    },
    {
      // An app's node-redis client with its defaults: offline queue on, reconnects forever.
      name: 'app client with node-redis defaults',
      open: async () => {
        const client = createClient({ url: redis.url });
        client.on('error', () => undefined);
        await client.connect();
        return { store: new RedisIdempotencyStore({ client, ...options() }), disconnected: () => !client.isReady, close: async () => client.destroy() };
      },
    },
  ];

  for (const variant of variants) {
    it(`fails every operation fast with an "unavailable" error while Redis is down, and works again once it is back (${variant.name})`, async () => {
      const { store, disconnected, close } = await variant.open();
      store.onModuleInit();
      try {
        await claimAndComplete(store);
        const held = await store.claim(claimOf());
        if (held.state !== 'acquired') throw new Error('expected acquired');

        await redis.halt();
        try {
          // a command sent before the client saw the connection close waits for an answer that never
          // comes: that one is a timeout. Once the client knows, every operation fails at once.
          await until(async () => disconnected(), 5_000, 'the client to notice the outage');
          const failures = [
            await failureOf(store.claim(claimOf())),
            await failureOf(store.complete(held.lease, response, 60_000)),
            await failureOf(store.heartbeat(held.lease, 60_000)),
            await failureOf(store.release(held.lease)),
            await failureOf(store.ping()),
          ];
          for (const failure of failures) {
            expect(failure).toBeInstanceOf(Error);
            expect(storeFailureOf(failure)).toBe('unavailable');
          }
          expect(await store.purgeExpired()).toBe(0);
        } finally {
          await redis.start();
        }

        await until(async () => (await failureOf(store.ping())) === 'resolved', 10_000, 'the store to reconnect');
        await claimAndComplete(store);
        // Nothing survived the restart of a server without persistence: the old lease is gone, fenced.
        expect(await store.complete(held.lease, response, 60_000)).toBe(false);
      } finally {
        await store.onApplicationShutdown();
        await close();
      }
    });
  }

  it('a store started while Redis is down waits at most commandTimeoutMs per operation, then works once Redis comes up', async () => {
    await redis.halt();
    const store = new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix('outage'), commandTimeoutMs: 300 });
    store.onModuleInit();
    try {
      const failure = await failureOf(store.claim(claimOf()));
      expect(failure).toBeInstanceOf(RedisStoreUnavailableError);
      expect(storeFailureOf(failure)).toBe('unavailable');
      await redis.start();
      await until(async () => (await failureOf(store.ping())) === 'resolved', 10_000, 'the store to connect');
      await claimAndComplete(store);
    } finally {
      await redis.start();
      await store.onApplicationShutdown();
    }
    expect(store.client.status).toBe('end');
  });

  it('answers "timeout" when a connected Redis does not answer within commandTimeoutMs', async () => {
    const store = new RedisIdempotencyStore({ url: redis.url, keyPrefix: testKeyPrefix('outage'), commandTimeoutMs: 200 });
    const blocker = new Redis(redis.url);
    try {
      await store.ping();
      // The server holds every other client's commands for 3 s: a stall like a long script or a slow
      // KEYS *. Long beside commandTimeoutMs because the claim must reach the server inside the
      // pause: with 600 ms it went out after the pause had ended with stress --cpu 2 on the shared
      // 2-core machine (load average ~30).
      await blocker.client('PAUSE', 3_000);
      const failure = await failureOf(store.claim(claimOf()));
      expect(storeFailureOf(failure)).toBe('timeout');
      await until(async () => (await failureOf(store.ping())) === 'resolved', 10_000, 'the pause to end');
      await claimAndComplete(store);
    } finally {
      blocker.disconnect();
      await store.onApplicationShutdown();
    }
  });
});
