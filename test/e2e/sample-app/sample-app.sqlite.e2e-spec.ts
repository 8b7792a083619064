import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { describeSampleApp } from './sample-app.scenarios.js';

// A real SQLite file (WAL on, as with `npm start`), created and migrated by the app itself.
const dir = mkdtempSync(join(tmpdir(), 'sample-app-'));
let files = 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeSampleApp('sqlite', async () => ({ options: { sqliteFile: join(dir, `app-${files++}.sqlite`) } }));
