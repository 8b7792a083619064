import { Check, Column, Entity, Index, PrimaryColumn, type ValueTransformer } from 'typeorm';

/**
 * Default name of the table holding idempotency records.
 * @publicApi
 */
export const IDEMPOTENCY_RECORDS_TABLE = 'idempotency_records';

/** The SQL check that keeps `status` to the two stored states ("released" and "expired" are never stored). @internal */
export const IDEMPOTENCY_STATUS_CHECK = `"status" IN ('in_progress', 'completed')`;

/** PostgreSQL returns `bigint` as a string; the values here are epoch milliseconds and counters, safe as numbers. */
const bigintAsNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null || value === undefined ? value : Number(value)),
};

/**
 * One `Idempotency-Key` of one scope: its lease while a request runs, then the stored response until
 * retention ends. Rows are written only by `TypeOrmIdempotencyStore` (raw SQL, single statements);
 * the entity exists so `synchronize: true` creates the table and so you can query it.
 *
 * Times are epoch milliseconds read from the database clock (`bigint` on PostgreSQL and SQLite alike,
 * so one entity fits both drivers). On PostgreSQL, `to_timestamp(expires_at / 1000.0)` shows them as
 * timestamps.
 *
 * Register it (`entities: [IdempotencyRecord]`) or run the migration from `idempotencyMigrations`;
 * both create the same schema. To use another table name, run `createIdempotencyRecordsMigration(name)`
 * or subclass: `@Entity('my_records') class MyRecords extends IdempotencyRecord {}`, and pass
 * `{ tableName: 'my_records' }` to the store.
 * @publicApi
 */
@Entity({ name: IDEMPOTENCY_RECORDS_TABLE })
@Check(IDEMPOTENCY_STATUS_CHECK)
@Index(['expiresAt'])
export class IdempotencyRecord {
  /** sha256 hex of the length-prefixed namespace, scope and key (`recordIdOf()`); the lease's `recordId`. */
  @PrimaryColumn({ name: 'lookup_hash', type: 'varchar', length: 64 })
  lookupHash!: string;

  /** Application namespace, so several apps can share the table. */
  @Column({ name: 'namespace', type: 'varchar', length: 100 })
  namespace!: string;

  /** Tenant or user; `''` for global keys (never NULL: NULLs never conflict in a unique index). */
  @Column({ name: 'scope', type: 'varchar', length: 255, default: '' })
  scope!: string;

  /** The raw `Idempotency-Key` sent by the client. */
  @Column({ name: 'idempotency_key', type: 'varchar', length: 255 })
  idempotencyKey!: string;

  /** sha256 hex of the request (scope, method, route, canonical body). */
  @Column({ name: 'fingerprint', type: 'varchar', length: 64 })
  fingerprint!: string;

  /** `in_progress` while a request owns the key, `completed` once a response is stored. */
  @Column({ name: 'status', type: 'varchar', length: 16 })
  status!: 'in_progress' | 'completed';

  /** Fencing token of the current owner; NULL once completed. */
  @Column({ name: 'owner_token', type: 'varchar', length: 36, nullable: true })
  ownerToken!: string | null;

  /** +1 on every takeover or reuse; handed to the handler for downstream fencing. */
  @Column({ name: 'fence', type: 'bigint', default: 1, transformer: bigintAsNumber })
  fence!: number;

  /** Executions of the current request (1, then +1 per takeover of a crashed owner). */
  @Column({ name: 'attempts', type: 'integer', default: 1 })
  attempts!: number;

  /** End of the owner's lease (epoch ms, database clock); NULL once completed. */
  @Column({ name: 'locked_until', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  lockedUntil!: number | null;

  /** End of retention (epoch ms, database clock); the purge deletes the row after it. */
  @Column({ name: 'expires_at', type: 'bigint', transformer: bigintAsNumber })
  expiresAt!: number;

  /** HTTP method of the request, for diagnostics. */
  @Column({ name: 'request_method', type: 'varchar', length: 10 })
  requestMethod!: string;

  /** Route path of the request, for diagnostics. */
  @Column({ name: 'request_path', type: 'varchar', length: 2048 })
  requestPath!: string;

  /** Stored HTTP status. */
  @Column({ name: 'response_status', type: 'integer', nullable: true })
  responseStatus!: number | null;

  /** Stored allow-listed headers, JSON text. */
  @Column({ name: 'response_headers', type: 'text', nullable: true })
  responseHeaders!: string | null;

  /** Stored body as encoded by the idempotency core. */
  @Column({ name: 'response_body', type: 'text', nullable: true })
  responseBody!: string | null;

  /** How `response_body` is encoded: `json`, `text` or `empty`. */
  @Column({ name: 'response_encoding', type: 'varchar', length: 8, nullable: true })
  responseEncoding!: 'json' | 'text' | 'empty' | null;

  /** When the current request first claimed the key (epoch ms, database clock). */
  @Column({ name: 'created_at', type: 'bigint', transformer: bigintAsNumber })
  createdAt!: number;

  /** Last write (epoch ms, database clock). */
  @Column({ name: 'updated_at', type: 'bigint', transformer: bigintAsNumber })
  updatedAt!: number;

  /** When the response was stored (epoch ms, database clock). */
  @Column({ name: 'completed_at', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  completedAt!: number | null;
}
