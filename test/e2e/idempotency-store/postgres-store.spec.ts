import { hasPostgres } from '../../support/postgres.js';
import { describeIdempotencyStoreContract } from './store-contract.js';
import { postgresHarness } from './support.js';

describeIdempotencyStoreContract('TypeOrmIdempotencyStore on PostgreSQL (migrations, pool of 10)', () => postgresHarness({ schema: 'migrations' }), {
  skip: !hasPostgres,
});
