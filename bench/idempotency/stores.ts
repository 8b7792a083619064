/** The idempotency-benchmark servers: the same POST route bare, or `@Idempotent()` on each store. */
export const IDEMPOTENCY_STORES = ['bare', 'memory', 'sqlite', 'postgres'] as const;
export type IdempotencyStoreKind = (typeof IDEMPOTENCY_STORES)[number];

/** Table labels. */
export const STORE_LABELS: Record<IdempotencyStoreKind, string> = {
  bare: 'bare route (no `@Idempotent()`)',
  memory: '`@Idempotent()`, InMemoryIdempotencyStore',
  sqlite: '`@Idempotent()`, SQLite (better-sqlite3, file, WAL)',
  postgres: '`@Idempotent()`, PostgreSQL',
};

/** What a server recorded while the parent measured one request (see `counters.start` / `counters.stop`). */
export interface RoundTripRecording {
  /** Every statement TypeORM sent to the database (its Logger's `logQuery`), first line only. */
  readonly statements: string[];
  /** PostgreSQL only: queries written to the wire (`pg.Client#query` calls). */
  readonly wireQueries: number | null;
  /** The store's own `onQuery` hook: which store operation each statement belonged to. */
  readonly storeOperations: string[];
}

/** The request body every benchmark request sends. */
export const ORDER_BODY = JSON.stringify({ item: 'book', qty: 1 });
