import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { IDEMPOTENCY_RECORDS_TABLE, IDEMPOTENCY_STATUS_CHECK } from '../idempotency-record.entity.js';

/** The table exactly as the `IdempotencyRecord` entity declares it (names come from the naming strategy). */
function idempotencyRecordsTable(name: string): Table {
  const column = (columnName: string, type: string, extra: Record<string, unknown> = {}) => ({ name: columnName, type, ...extra });
  return new Table({
    name,
    columns: [
      column('lookup_hash', 'varchar', { length: '64', isPrimary: true }),
      column('namespace', 'varchar', { length: '100' }),
      column('scope', 'varchar', { length: '255', default: "''" }),
      column('idempotency_key', 'varchar', { length: '255' }),
      column('fingerprint', 'varchar', { length: '64' }),
      column('status', 'varchar', { length: '16' }),
      column('owner_token', 'varchar', { length: '36', isNullable: true }),
      column('fence', 'bigint', { default: 1 }),
      column('attempts', 'integer', { default: 1 }),
      column('locked_until', 'bigint', { isNullable: true }),
      column('expires_at', 'bigint'),
      column('request_method', 'varchar', { length: '10' }),
      column('request_path', 'varchar', { length: '2048' }),
      column('response_status', 'integer', { isNullable: true }),
      column('response_headers', 'text', { isNullable: true }),
      column('response_body', 'text', { isNullable: true }),
      column('response_encoding', 'varchar', { length: '8', isNullable: true }),
      column('created_at', 'bigint'),
      column('updated_at', 'bigint'),
      column('completed_at', 'bigint', { isNullable: true }),
    ],
    checks: [{ expression: IDEMPOTENCY_STATUS_CHECK }],
    indices: [{ columnNames: ['expires_at'] }],
  });
}

/**
 * Creates the `idempotency_records` table (PostgreSQL and SQLite), the same schema that
 * `synchronize: true` derives from the `IdempotencyRecord` entity.
 * @example
 * new DataSource({ ..., migrations: [...idempotencyMigrations], migrationsRun: true });
 * @publicApi
 */
export class CreateIdempotencyRecords1700000000000 implements MigrationInterface {
  name = 'CreateIdempotencyRecords1700000000000';

  /** @param tableName table to create. @default 'idempotency_records' */
  constructor(protected readonly tableName: string = IDEMPOTENCY_RECORDS_TABLE) {}

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(idempotencyRecordsTable(this.tableName), true);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(this.tableName, true);
  }
}

/**
 * The same migration for a table of another name (pass the same name to the store's `tableName`).
 * @example
 * migrations: [createIdempotencyRecordsMigration('billing_idempotency')]
 * @publicApi
 */
export function createIdempotencyRecordsMigration(tableName: string): new () => MigrationInterface {
  return class extends CreateIdempotencyRecords1700000000000 {
    override name = `CreateIdempotencyRecords_${tableName}1700000000000`;
    constructor() {
      super(tableName);
    }
  };
}

/**
 * Every migration of the idempotency table, in order; spread it into your DataSource's `migrations`.
 * @publicApi
 */
export const idempotencyMigrations: Array<new () => MigrationInterface> = [CreateIdempotencyRecords1700000000000];
