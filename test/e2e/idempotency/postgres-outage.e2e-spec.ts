import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe } from 'vitest';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../../support/postgres.js';
import { describeStoreOutage } from './store-outage.js';
import type { ThrowawayPostgres } from '../../../scripts/postgres.mjs';

// Stops and restarts a PostgreSQL server of its own (never the shared one).
describe.skipIf(!hasPostgres)('PostgreSQL stopped during traffic', () => {
  let own: OwnPostgres;
  let postgres: ThrowawayPostgres;
  let dataSource: DataSource;

  beforeAll(async () => {
    own = await startOwnPostgres([IdempotencyRecord], { poolSize: 5, connectTimeoutMs: 500, queryTimeoutMs: 2000 });
    ({ server: postgres, dataSource } = own);
  });
  afterAll(() => own?.close());

  describeStoreOutage(() => ({
    halt: () => postgres.halt(),
    start: () => postgres.start(),
    storeFor: () => new TypeOrmIdempotencyStore(dataSource),
  }));
});
