// The public surface of every entry point is pinned in api-report/ (scripts/api-report.mjs): a change
// of an export is a visible diff, made on purpose with `npm run api:report`.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAX_ROOT_RUNTIME_EXPORTS, checkReports } from '../../scripts/api-report.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe.skipIf(!existsSync(join(root, 'dist/index.d.ts')))('API reports (api-report/)', () => {
  it('match what every entry point of dist/ exports; the root entry keeps the Nest surface', async () => {
    const { problems, counts } = await checkReports();
    // on a failure: the surface changed; if on purpose, `npm run api:report` and commit api-report/
    expect(problems).toEqual([]);
    expect(counts['nest-resilience']!.runtime).toBeLessThanOrEqual(MAX_ROOT_RUNTIME_EXPORTS);
    expect(Object.keys(counts)).toEqual(expect.arrayContaining(['nest-resilience', 'nest-resilience/core', 'nest-resilience/http']));
  }, 120_000);
});
