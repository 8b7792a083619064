import { describeIdempotencyStoreContract } from './store-contract.js';
import { sqliteHarness } from './support.js';

describeIdempotencyStoreContract('TypeOrmIdempotencyStore on SQLite (temp file, WAL, synchronize)', () => sqliteHarness('file'));
describeIdempotencyStoreContract('TypeOrmIdempotencyStore on SQLite (:memory:, migrations)', () => sqliteHarness('memory', { schema: 'migrations' }));
