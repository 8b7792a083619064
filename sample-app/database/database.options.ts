import type { TypeOrmModuleOptions } from '@nestjs/typeorm';
import { IdempotencyRecord, idempotencyMigrations } from 'nest-resilience/typeorm';
import { Account } from '../accounts/account.entity.js';
import { ReportReadyEvent } from '../report-events/report-ready-event.entity.js';
import { Report } from '../reports/report.entity.js';
import type { SampleAppOptions } from '../sample-app.options.js';
import { CreateAccountsAndReports1767000000000 } from './migrations/1767000000000-create-accounts-and-reports.migration.js';
import { CreateReportReadyEvents1767000000001 } from './migrations/1767000000001-create-report-ready-events.migration.js';

/** Default SQLite file, created in the working directory on first start. */
export const DEFAULT_SQLITE_FILE = 'sample-app.sqlite';

/**
 * TypeORM options: PostgreSQL when `databaseUrl` is set, else SQLite. The schema comes from
 * migrations only (the library's `idempotency_records`, then the app's tables), run on start.
 */
export function databaseOptions(options: SampleAppOptions): TypeOrmModuleOptions {
  const common: Pick<TypeOrmModuleOptions, 'entities' | 'migrations' | 'migrationsRun' | 'synchronize' | 'retryAttempts'> = {
    entities: [Account, Report, ReportReadyEvent, IdempotencyRecord],
    migrations: [...idempotencyMigrations, CreateAccountsAndReports1767000000000, CreateReportReadyEvents1767000000001],
    migrationsRun: true,
    synchronize: false,
    // Fail start-up at once instead of retrying the connection nine times.
    retryAttempts: 0,
  };
  if (options.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(options.databaseUrl)) {
      throw new Error(`DATABASE_URL must be a postgres:// URL (got "${redact(options.databaseUrl)}"); unset it to use SQLite.`);
    }
    return {
      type: 'postgres',
      url: options.databaseUrl,
      // An unreachable database must fail requests fast (503), not hang them.
      connectTimeoutMS: 2_000,
      extra: { query_timeout: 5_000, max: 10 },
      ...common,
    };
  }
  return {
    type: 'better-sqlite3',
    database: options.sqliteFile ?? DEFAULT_SQLITE_FILE,
    // WAL lets readers (GET /reports/:id, /health) run while a write transaction is open.
    enableWAL: options.sqliteFile !== ':memory:',
    // Writers wait up to 5 s for the write lock instead of failing with SQLITE_BUSY.
    timeout: 5_000,
    ...common,
  };
}

/** A human-readable description of where the data lives, for the start-up log. */
export function describeDatabase(options: SampleAppOptions): string {
  return options.databaseUrl
    ? `PostgreSQL ${redact(options.databaseUrl)}`
    : `SQLite ${options.sqliteFile ?? DEFAULT_SQLITE_FILE}`;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
