// A PostgreSQL database for the benchmark: a fresh database on DATABASE_URL's server, or a
// throwaway server of our own (scripts/postgres.mjs), or a reason why there is none.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { ThrowawayPostgres } from '../../scripts/postgres.mjs';
import { packageRoot } from './report.js';

/** A database only this run uses; `close()` drops it (or stops the throwaway server). */
export interface BenchDatabase {
  readonly url: string;
  /** Where it came from, for the report. */
  readonly source: string;
  close(): Promise<void>;
}

/**
 * `scripts/postgres.mjs`, loaded from the package root: compiled files under build/ cannot reach it
 * by a relative import.
 */
export async function loadPostgresScript(): Promise<typeof import('../../scripts/postgres.mjs')> {
  return import(pathToFileURL(join(packageRoot(), 'scripts', 'postgres.mjs')).href);
}

/**
 * Provides a database, or returns the reason PostgreSQL cannot be used here. `durable` asks a
 * throwaway server for fsync and synchronous_commit on (see `startPostgres`).
 */
export async function obtainPostgres(
  env: NodeJS.ProcessEnv = process.env,
  { durable = false }: { durable?: boolean } = {},
): Promise<BenchDatabase | { skipped: string }> {
  if (env.DATABASE_URL) {
    try {
      return await freshDatabase(env.DATABASE_URL, `DATABASE_URL (${redact(env.DATABASE_URL)}), fresh database`);
    } catch (error) {
      return { skipped: `DATABASE_URL is set but unusable: ${(error as Error).message}` };
    }
  }
  let server: ThrowawayPostgres;
  try {
    const { startPostgres } = await loadPostgresScript();
    server = await startPostgres({ durable });
  } catch (error) {
    return { skipped: `no DATABASE_URL and no throwaway server could be started: ${(error as Error).message.split('\n')[0]}` };
  }
  const settings = durable ? 'fsync and synchronous_commit on' : 'fsync off';
  return { url: server.url, source: `throwaway server (scripts/postgres.mjs, ${settings})`, close: async () => server.stop() };
}

async function freshDatabase(serverUrl: string, source: string): Promise<BenchDatabase> {
  const name = `bench_idem_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    source,
    async close() {
      const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'unparseable URL';
  }
}
