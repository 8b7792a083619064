import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { startPostgres, type ThrowawayPostgres } from '../../scripts/postgres.mjs';

/** The server `npm test` started (or the one DATABASE_URL names); undefined when there is none. */
export const postgresUrl = process.env.DATABASE_URL;

/** Whether PostgreSQL tests can run; they are skipped (loudly, by `npm test`) otherwise. */
export const hasPostgres = Boolean(postgresUrl);

/**
 * A fresh, empty database on the test server, so test files running in parallel never share tables.
 * `drop()` removes it (terminating leftover connections first).
 */
export async function createTestDatabase(prefix = 'test'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  if (!postgresUrl) throw new Error('DATABASE_URL is not set: run the suite with `npm test`, which starts PostgreSQL.');
  const name = `${prefix}_${randomBytes(6).toString('hex')}`.toLowerCase();
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid()`);
      await adminQuery(`DROP DATABASE IF EXISTS ${name}`);
    },
  };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A PostgreSQL server owned by one test file, with a DataSource on it. */
export interface OwnPostgres {
  /** The server: `halt()` stops it (keeping data), `start()` brings it back. */
  readonly server: ThrowawayPostgres;
  /** A DataSource whose connections fail fast while the server is down. */
  readonly dataSource: DataSource;
  /** Destroys the DataSource and deletes the server. */
  close(): Promise<void>;
}

/**
 * Starts a PostgreSQL server of the test's own (tests that stop the database must never stop the
 * shared one) and a synchronized DataSource on it with short connect and query timeouts.
 */
export async function startOwnPostgres(
  entities: DataSourceOptions['entities'],
  { poolSize = 5, connectTimeoutMs = 500, queryTimeoutMs = 2_000 } = {},
): Promise<OwnPostgres> {
  const server = await startPostgres();
  const dataSource = await new DataSource({
    type: 'postgres',
    url: server.url,
    entities,
    synchronize: true,
    poolSize,
    connectTimeoutMS: connectTimeoutMs,
    extra: { query_timeout: queryTimeoutMs, connectionTimeoutMillis: connectTimeoutMs },
  } as DataSourceOptions).initialize();
  return {
    server,
    dataSource,
    close: async () => {
      await dataSource.destroy().catch(() => undefined);
      server.stop();
    },
  };
}
