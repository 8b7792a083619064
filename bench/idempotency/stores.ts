/**
 * The idempotency-benchmark servers: the same POST route bare, `@Idempotent()` on each of our
 * stores, and @node-idempotency/nestjs on its memory and Redis adapters (`nip-*`).
 */
export const IDEMPOTENCY_STORES = ['bare', 'memory', 'nip-memory', 'redis', 'redis-node', 'nip-redis', 'sqlite', 'postgres'] as const;
export type IdempotencyStoreKind = (typeof IDEMPOTENCY_STORES)[number];

/** Table labels. */
export const STORE_LABELS: Record<IdempotencyStoreKind, string> = {
  bare: 'bare route (no `@Idempotent()`)',
  memory: '`@Idempotent()`, InMemoryIdempotencyStore',
  sqlite: '`@Idempotent()`, SQLite (better-sqlite3, file, WAL)',
  postgres: '`@Idempotent()`, PostgreSQL',
  redis: '`@Idempotent()`, RedisIdempotencyStore (ioredis, from `url`)',
  'redis-node': '`@Idempotent()`, RedisIdempotencyStore (node-redis client)',
  'nip-memory': '@node-idempotency/nestjs, in-memory adapter',
  'nip-redis': '@node-idempotency/nestjs, Redis adapter',
};

/** Stores that keep their records in Redis (the benchmark needs a Redis server for them). */
export const REDIS_STORES: readonly IdempotencyStoreKind[] = ['redis', 'redis-node', 'nip-redis'];

/** What a server recorded while the parent measured one request (see `counters.start` / `counters.stop`). */
export interface RoundTripRecording {
  /** Every statement TypeORM sent to the database (its Logger's `logQuery`), first line only. */
  readonly statements: string[];
  /** PostgreSQL: queries written to the wire (`pg.Client#query` calls); Redis: commands the server ran (its `INFO commandstats`). */
  readonly wireQueries: number | null;
  /** The store's own `onQuery` hook: which store operation each statement belonged to. */
  readonly storeOperations: string[];
}

/** The request body every benchmark request sends. */
export const ORDER_BODY = JSON.stringify({ item: 'book', qty: 1 });
