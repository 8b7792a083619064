// The fuzz target: the real sample app (createSampleApp: pino, ValidationPipe, problem+json filter,
// TypeORM on SQLite, the library) on a loopback port, with a fast model service beside it.
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { createSampleApp, type SamplePlatform } from '../../sample-app/create-sample-app.js';
import { startModelService, type ModelService } from '../../sample-app/model-service/model-service.js';
import { ReportQueue } from '../../sample-app/reports/report-queue.service.js';

/** What the database holds: any change means a request left something behind. */
export interface StoredState {
  readonly idempotencyRecords: number;
  readonly reports: number;
  readonly credits: number;
}

/** A running sample app under fuzz (reports generated in process: no REDIS_URL is passed). */
export interface FuzzTarget {
  readonly platform: SamplePlatform;
  readonly port: number;
  /** Counts the idempotency records, the reports and the credits left, in the app's own database. */
  stored(): Promise<StoredState>;
  close(): Promise<void>;
}

/**
 * Starts the sample app on `platform` with SQLite `sqliteFile` (`:memory:` is fine: the counts are
 * read through the app's own connection). `acme` has credits for every case; `globex` runs out
 * after two reports (402).
 */
export async function startFuzzTarget(platform: SamplePlatform, sqliteFile = ':memory:'): Promise<FuzzTarget> {
  const model: ModelService = await startModelService({ port: 0, latencyMs: 1, failureRate: 0, log: () => undefined });
  let app: INestApplication | undefined;
  try {
    app = await createSampleApp(
      { sqliteFile, modelServiceUrl: model.url, logLevel: 'silent', seedAccounts: { acme: 1_000_000, globex: 2 } },
      { platform },
    );
    await app.listen(0, '127.0.0.1');
  } catch (error) {
    await app?.close().catch(() => undefined);
    await model.close();
    throw error;
  }
  const started = app;
  const dataSource = started.get(DataSource);
  const { port } = started.getHttpServer().address() as AddressInfo;
  return {
    platform,
    port,
    async stored() {
      // an accepted report is generated after its 202, and that job keeps its own idempotency record
      // (@Idempotent on the report id): let it finish, or the next request is blamed for its record
      await started.get(ReportQueue).idle();
      const [row] = (await dataSource.query(
        'SELECT (SELECT COUNT(*) FROM idempotency_records) AS records, (SELECT COUNT(*) FROM reports) AS reports, (SELECT SUM(credits) FROM accounts) AS credits',
      )) as Array<{ records: number | string; reports: number | string; credits: number | string }>;
      return { idempotencyRecords: Number(row!.records), reports: Number(row!.reports), credits: Number(row!.credits) };
    },
    async close() {
      await started.close();
      await model.close();
    },
  };
}
