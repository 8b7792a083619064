/**
 * `nest-resilience/typeorm`: the durable idempotency store on PostgreSQL or SQLite (better-sqlite3).
 *
 * Create the table in one of two ways (both give the same schema):
 * - register the entity and let TypeORM synchronize it:
 *   `TypeOrmModule.forRoot({ ..., entities: [IdempotencyRecord, ...yours], synchronize: true })`
 * - or run the migration: `migrations: [...idempotencyMigrations, ...yours], migrationsRun: true`
 *   (`createIdempotencyRecordsMigration('other_name')` for another table name).
 *
 * Then hand the store to the module:
 * ```ts
 * ResilienceModule.forRootAsync({
 *   inject: [DataSource],
 *   useFactory: (dataSource: DataSource) => ({ idempotency: { store: new TypeOrmIdempotencyStore(dataSource) } }),
 * });
 * ```
 * DataSource settings that matter: PostgreSQL `connectTimeoutMS` (e.g. 2_000) and
 * `extra: { query_timeout: 5_000 }` so an unreachable database fails fast (503) instead of hanging;
 * a pool (`poolSize`) sized for your concurrency. SQLite: a file database with `enableWAL: true`;
 * the store waits for the write lock up to its own `lockTimeout` without blocking the event loop
 * (better-sqlite3's `timeout` only applies to your app's own statements).
 * Optional: `startPurger(store, { interval })` deletes expired records in the background.
 * @module nest-resilience/typeorm
 */
export { IdempotencyRecord, IDEMPOTENCY_RECORDS_TABLE } from './idempotency-record.entity.js';
export {
  CreateIdempotencyRecords1700000000000,
  createIdempotencyRecordsMigration,
  idempotencyMigrations,
} from './migrations/create-idempotency-records.migration.js';
export {
  TypeOrmIdempotencyStore,
  type IdempotencyQueryEvent,
  type IdempotencyStoreOperation,
  type PurgeExpiredOptions,
  type TypeOrmIdempotencyStoreOptions,
} from './typeorm-idempotency.store.js';
export { SqliteLockTimeoutError, SqliteStoreQueueFullError } from './sqlite-store.errors.js';
// The purger works with any store; re-exported here because it is mostly used with this one.
export { startPurger, type IdempotencyPurgerOptions } from '../idempotency/idempotency-purger.js';
