import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarizeVitestReport, type VitestReport } from '../../scripts/vitest-summary.mjs';

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/vitest-summary');
const run = promisify(execFile);

/** vitest's own bin, run on this test's Node the way scripts/test.mjs runs the suite. */
function vitestBin(): string {
  const manifest = createRequire(import.meta.url).resolve('vitest/package.json');
  return join(dirname(manifest), (JSON.parse(readFileSync(manifest, 'utf8')) as { bin: { vitest: string } }).bin.vitest);
}

/** Runs the fixtures whose file names contain `filter` and returns vitest's JSON report of them. */
async function reportOf(work: string, filter: string): Promise<VitestReport & { numFailedTestSuites: number }> {
  const output = join(work, `${filter}.json`);
  // the inner run must not see the outer vitest's worker variables
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'TEST'));
  const args = [vitestBin(), 'run', filter, '--root', fixtures, '--config', join(fixtures, 'vitest.config.mjs'), '--reporter=json', `--outputFile.json=${output}`];
  const inner = await run(process.execPath, args, { env }).catch((error: { code?: number }) => error);
  expect((inner as { code?: number }).code).toBe(1);
  return JSON.parse(readFileSync(output, 'utf8')) as VitestReport & { numFailedTestSuites: number };
}

describe('the counts npm test ends with (real vitest JSON reports of failing fixtures)', () => {
  let work: string;
  let nested: VitestReport & { numFailedTestSuites: number };
  let all: VitestReport;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nest-resilience-summary-'));
    [nested, all] = await Promise.all([reportOf(work, 'nested-failure'), reportOf(work, '.fixture')]);
  }, 60_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('counts one failure for a failed test nested two describes deep, not one per enclosing suite and file', () => {
    // what the old count added up: the test, both describes and the file
    expect(nested.numFailedTests + nested.numFailedTestSuites).toBe(4);
    expect(summarizeVitestReport(nested)).toEqual({ passed: 1, failed: 1, skipped: 0, failedFiles: [] });
  });

  it('counts a file that fails to load and a failing hook as one failure each, without their kept-back tests as skipped', () => {
    const summary = summarizeVitestReport(all);
    expect(summary.failedFiles.map((file) => basename(file)).sort()).toEqual(['failing-hook.fixture.ts', 'fails-to-load.fixture.ts']);
    // the nested failure, the file that did not load, the file whose hook threw
    expect(summary.failed).toBe(3);
    // the test beside the failing hook and the passing tests of the nested and skipped fixtures
    expect(summary.passed).toBe(3);
    // it.skip only: the two tests behind the failing hook belong to that file's failure
    expect(summary.skipped).toBe(1);
  });
});
