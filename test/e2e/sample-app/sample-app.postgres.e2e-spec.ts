import { afterAll, describe } from 'vitest';
import { createTestDatabase, hasPostgres } from '../../support/postgres.js';
import { describeSampleApp } from './sample-app.scenarios.js';

// One fresh database per app; the app runs the migrations itself, exactly as on `npm start`.
const drops: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const drop of drops) await drop();
});

describe.skipIf(!hasPostgres)('PostgreSQL', () => {
  describeSampleApp('postgres', async () => {
    const database = await createTestDatabase('sample_app');
    drops.push(database.drop);
    return { options: { databaseUrl: database.url } };
  });
});
