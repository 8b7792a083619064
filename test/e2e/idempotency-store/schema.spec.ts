import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataSource, Entity, type DataSourceOptions, type Table } from 'typeorm';
import {
  IdempotencyRecord,
  TypeOrmIdempotencyStore,
  createIdempotencyRecordsMigration,
  idempotencyMigrations,
} from 'nest-resilience/typeorm';
import { createTestDatabase, hasPostgres } from '../../support/postgres.js';

@Entity({ name: 'billing_idempotency' })
class BillingIdempotencyRecord extends IdempotencyRecord {}

interface Target {
  readonly name: string;
  readonly skip: boolean;
  /** Connection options of a fresh, empty database, and how to drop it. */
  open(): Promise<{ options: DataSourceOptions; drop(): Promise<void> }>;
}

const targets: Target[] = [
  {
    name: 'SQLite (better-sqlite3 file)',
    skip: false,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'idempotency-schema-'));
      return {
        options: { type: 'better-sqlite3', database: join(dir, 'schema.db') },
        drop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !hasPostgres,
    open: async () => {
      const database = await createTestDatabase('idem_schema');
      return { options: { type: 'postgres', url: database.url, connectTimeoutMS: 2_000 }, drop: database.drop };
    },
  },
];

/** Column, index and check shape of a table, independent of generated object order. */
function shapeOf(table: Table) {
  return {
    columns: table.columns
      .map((c) => ({ name: c.name, type: c.type, length: c.length, nullable: c.isNullable, primary: c.isPrimary, default: c.default }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    indices: table.indices.map((i) => ({ name: i.name, columns: i.columnNames, unique: i.isUnique })).sort((a, b) => a.name!.localeCompare(b.name!)),
    checks: table.checks.map((c) => ({ name: c.name, expression: c.expression })),
  };
}

for (const target of targets) {
  describe.skipIf(target.skip)(`idempotency table schema on ${target.name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    async function dataSourceWith(options: Partial<DataSourceOptions>): Promise<DataSource> {
      const database = await target.open();
      const dataSource = new DataSource({ ...database.options, ...options } as DataSourceOptions);
      await dataSource.initialize();
      cleanups.push(async () => {
        if (dataSource.isInitialized) await dataSource.destroy();
        await database.drop();
      });
      return dataSource;
    }

    async function tableShape(dataSource: DataSource, name: string) {
      const queryRunner = dataSource.createQueryRunner();
      try {
        return shapeOf((await queryRunner.getTable(name))!);
      } finally {
        await queryRunner.release();
      }
    }

    async function pendingSchemaChanges(dataSource: DataSource): Promise<string[]> {
      const sql = await dataSource.driver.createSchemaBuilder().log();
      return sql.upQueries.map((query) => query.query);
    }

    async function roundTrip(store: TypeOrmIdempotencyStore): Promise<void> {
      const claim = { namespace: 'n', scope: '', key: 'k', fingerprint: 'f'.repeat(64), method: 'POST', path: '/x', leaseMs: 60_000, ttlMs: 60_000 };
      const claimed = await store.claim(claim);
      if (claimed.state !== 'acquired') throw new Error(`expected acquired, got ${claimed.state}`);
      const response = { status: 201, headers: {}, body: '{}', bodyEncoding: 'json' as const };
      expect(await store.complete(claimed.lease, response, 60_000)).toBe(true);
      expect(await store.claim(claim)).toEqual({ state: 'completed', sameRequest: true, response });
    }

    it('creates the same table from the migration as synchronize derives from the entity', async () => {
      const migrated = await dataSourceWith({ entities: [IdempotencyRecord], migrations: idempotencyMigrations, migrationsRun: true });
      const synchronized = await dataSourceWith({ entities: [IdempotencyRecord], synchronize: true });

      expect(await pendingSchemaChanges(migrated)).toEqual([]);
      const shape = await tableShape(migrated, 'idempotency_records');
      expect(shape).toEqual(await tableShape(synchronized, 'idempotency_records'));
      expect(shape.columns.map((c) => c.name)).toContain('lookup_hash');
      expect(shape.columns.find((c) => c.name === 'lookup_hash')?.primary).toBe(true);
      expect(shape.columns.find((c) => c.name === 'scope')).toMatchObject({ nullable: false });
      expect(shape.indices.map((i) => i.columns)).toContainEqual(['expires_at']);
      expect(shape.checks).toHaveLength(1);

      await roundTrip(new TypeOrmIdempotencyStore(migrated));
      await roundTrip(new TypeOrmIdempotencyStore(synchronized));
    });

    it('rejects a status outside the state machine and a NULL scope', async () => {
      const dataSource = await dataSourceWith({ entities: [IdempotencyRecord], migrations: idempotencyMigrations, migrationsRun: true });
      const insert = (status: string, scope: string | null) =>
        dataSource.query(
          `INSERT INTO idempotency_records (lookup_hash, namespace, scope, idempotency_key, fingerprint, status, fence, attempts, expires_at, request_method, request_path, created_at, updated_at)
           VALUES ('${status}${scope}', 'n', ${scope === null ? 'NULL' : `'${scope}'`}, 'k', 'f', '${status}', 1, 1, 0, 'POST', '/', 0, 0)`,
        );
      await expect(insert('released', '')).rejects.toThrow();
      await expect(insert('completed', null)).rejects.toThrow();
      await expect(insert('completed', '')).resolves.toBeDefined();
    });

    it('supports another table name through the migration factory, an entity subclass and the store option', async () => {
      const migrated = await dataSourceWith({
        entities: [BillingIdempotencyRecord],
        migrations: [createIdempotencyRecordsMigration('billing_idempotency')],
        migrationsRun: true,
      });
      expect(await pendingSchemaChanges(migrated)).toEqual([]);
      const store = new TypeOrmIdempotencyStore(migrated, { tableName: 'billing_idempotency' });
      await roundTrip(store);
      expect(await migrated.getRepository(BillingIdempotencyRecord).count()).toBe(1);
      expect(await migrated.createQueryRunner().hasTable('idempotency_records')).toBe(false);
    });

    it('drops the table when the migration is reverted', async () => {
      const dataSource = await dataSourceWith({ migrations: idempotencyMigrations, migrationsRun: true });
      expect(await dataSource.createQueryRunner().hasTable('idempotency_records')).toBe(true);
      await dataSource.undoLastMigration();
      expect(await dataSource.createQueryRunner().hasTable('idempotency_records')).toBe(false);
    });
  });
}

describe('TypeOrmIdempotencyStore configuration', () => {
  it('refuses an unsupported driver with a sentence naming the fix', () => {
    const dataSource = { options: { type: 'mysql' } } as unknown as DataSource;
    expect(() => new TypeOrmIdempotencyStore(dataSource)).toThrow(/supports the "postgres", "better-sqlite3" and "sqlite" TypeORM drivers, not "mysql"/);
  });

  it('refuses a table name that is not a plain identifier', () => {
    const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    expect(() => new TypeOrmIdempotencyStore(dataSource, { tableName: 'records; DROP TABLE users' })).toThrow(/not a plain SQL identifier/);
  });
});
