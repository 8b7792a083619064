import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Column, DataSource, Entity, PrimaryGeneratedColumn, type DataSourceOptions } from 'typeorm';
import { InMemoryIdempotencyStore, type IdempotencyStore } from 'nest-resilience';
import { Redis } from 'ioredis';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { createTestDatabase, hasPostgres } from '../../support/postgres.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';

/** The business table the test handlers write to. */
@Entity({ name: 'idem_test_reports' })
export class TestReport {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 255 })
  requestKey!: string;

  @Column({ type: 'varchar', length: 255 })
  title!: string;
}

export type StoreKind = 'memory' | 'sqlite' | 'postgres' | 'redis';

export interface StoreUnderTest {
  readonly kind: StoreKind;
  readonly store: IdempotencyStore;
  /** The DataSource of SQL stores (business rows live there too). */
  readonly dataSource?: DataSource;
  close(): Promise<void>;
}

/** Which stores can run here (PostgreSQL only with DATABASE_URL, Redis only with REDIS_URL). */
export const storeKinds: StoreKind[] = [
  'memory',
  'sqlite',
  ...(hasPostgres ? (['postgres'] as const) : []),
  ...(hasRedis ? (['redis'] as const) : []),
];

/** Whether stores of `kind` have `runInTransaction` (and a DataSource for the business rows). */
export function isTransactional(kind: StoreKind): boolean {
  return kind === 'sqlite' || kind === 'postgres';
}

/** A fresh store of `kind`: memory, SQLite file (WAL), a fresh PostgreSQL database, or a fresh key prefix on the Redis server. */
export async function createStore(
  kind: StoreKind,
  options: { poolSize?: number; connectTimeoutMS?: number; lockTimeout?: number } = {},
): Promise<StoreUnderTest> {
  if (kind === 'memory') return { kind, store: new InMemoryIdempotencyStore(), close: async () => undefined };
  if (kind === 'redis') {
    // A client of the test's own: the store leaves it open when an app closes, so the apps of
    // both platforms can share the store (one it opened from a url would close with the first app).
    const client = new Redis(redisUrl!, { enableOfflineQueue: false });
    const store = new RedisIdempotencyStore({ client, keyPrefix: testKeyPrefix('http') });
    return { kind, store, close: async () => client.disconnect() };
  }
  const entities = [IdempotencyRecord, TestReport];
  const { connection, cleanup } =
    kind === 'sqlite' ? sqliteDatabase() : await postgresDatabase(options.poolSize ?? 20, options.connectTimeoutMS ?? 2_000);
  const dataSource = await new DataSource({ ...connection, entities, synchronize: true } as DataSourceOptions).initialize();
  return {
    kind,
    store: new TypeOrmIdempotencyStore(dataSource, options.lockTimeout === undefined ? {} : { lockTimeout: options.lockTimeout }),
    dataSource,
    close: async () => {
      await dataSource.destroy();
      await cleanup();
    },
  };
}

type Connection = { connection: Partial<DataSourceOptions>; cleanup: () => Promise<void> | void };

function sqliteDatabase(): Connection {
  const dir = mkdtempSync(join(tmpdir(), 'idem-http-'));
  return {
    connection: { type: 'better-sqlite3', database: join(dir, 'app.db'), enableWAL: true, timeout: 5_000 },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function postgresDatabase(poolSize: number, connectTimeoutMS: number): Promise<Connection> {
  const database = await createTestDatabase('idem_http');
  return {
    connection: { type: 'postgres', url: database.url, poolSize, connectTimeoutMS },
    cleanup: () => database.drop(),
  };
}
