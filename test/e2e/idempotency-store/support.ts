import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Column, DataSource, Entity, PrimaryColumn, type DataSourceOptions, type EntityManager } from 'typeorm';
import { IdempotencyRecord, TypeOrmIdempotencyStore, idempotencyMigrations, type TypeOrmIdempotencyStoreOptions } from 'nest-resilience/typeorm';
import { createTestDatabase } from '../../support/postgres.js';
import type { StoreHarness } from './store-contract.js';

/** A business table written by transactional work. */
@Entity({ name: 'contract_business_rows' })
export class ContractBusinessRow {
  @PrimaryColumn({ type: 'varchar', length: 32 })
  id!: string;

  @Column({ type: 'varchar', length: 32, default: 'created' })
  state!: string;
}

/** Real time passing, for stores whose clock is the database server's. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface SqlHarness extends StoreHarness {
  readonly store: TypeOrmIdempotencyStore;
  readonly dataSource: DataSource;
}

/** Schema from `synchronize` (default) or from the migration. */
export type SchemaPath = 'synchronize' | 'migrations';

function schemaOptions(path: SchemaPath): Partial<DataSourceOptions> {
  return path === 'synchronize'
    ? { entities: [IdempotencyRecord, ContractBusinessRow], synchronize: true }
    : { entities: [IdempotencyRecord, ContractBusinessRow], migrations: idempotencyMigrations, migrationsRun: true, synchronize: false };
}

async function harnessOf(dataSource: DataSource, storeOptions: TypeOrmIdempotencyStoreOptions, cleanup: () => Promise<void>): Promise<SqlHarness> {
  await dataSource.initialize();
  if (!(await dataSource.createQueryRunner().hasTable('contract_business_rows'))) {
    // The migration path creates only the idempotency table; the test's own table comes from its entity.
    await dataSource.synchronize();
  }
  const store = new TypeOrmIdempotencyStore(dataSource, storeOptions);
  return {
    store,
    dataSource,
    shortMs: 300,
    pass: sleep,
    business: {
      insert: async (transaction, id) => {
        await (transaction as EntityManager).insert(ContractBusinessRow, { id });
      },
      count: () => dataSource.getRepository(ContractBusinessRow).count(),
    },
    close: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
      await cleanup();
    },
  };
}

/** better-sqlite3 on a temp file (WAL) or in memory. */
export async function sqliteHarness(
  kind: 'file' | 'memory',
  options: { schema?: SchemaPath; store?: TypeOrmIdempotencyStoreOptions } = {},
): Promise<SqlHarness> {
  const dir = kind === 'file' ? mkdtempSync(join(tmpdir(), 'idempotency-store-')) : undefined;
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: dir ? join(dir, 'store.db') : ':memory:',
    enableWAL: Boolean(dir),
    timeout: 5_000,
    ...schemaOptions(options.schema ?? 'synchronize'),
  } as DataSourceOptions);
  return harnessOf(dataSource, options.store ?? {}, async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

/** PostgreSQL in a fresh database of the test server. */
export async function postgresHarness(
  options: { schema?: SchemaPath; store?: TypeOrmIdempotencyStoreOptions; poolSize?: number } = {},
): Promise<SqlHarness> {
  const database = await createTestDatabase('idem_store');
  const dataSource = new DataSource({
    type: 'postgres',
    url: database.url,
    poolSize: options.poolSize ?? 10,
    connectTimeoutMS: 2_000,
    ...schemaOptions(options.schema ?? 'synchronize'),
  } as DataSourceOptions);
  return harnessOf(dataSource, options.store ?? {}, () => database.drop());
}
