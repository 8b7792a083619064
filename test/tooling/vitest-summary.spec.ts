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

describe('the counts npm test ends with (a real vitest JSON report of failing fixtures)', () => {
  let work: string;
  let report: VitestReport & { numFailedTestSuites: number };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nest-resilience-summary-'));
    const output = join(work, 'report.json');
    // the inner run must not see the outer vitest's worker variables
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'TEST'));
    const args = [vitestBin(), 'run', '--root', fixtures, '--config', join(fixtures, 'vitest.config.mjs'), '--reporter=json', `--outputFile.json=${output}`];
    const inner = await run(process.execPath, args, { env }).catch((error: { code?: number }) => error);
    expect((inner as { code?: number }).code).toBe(1);
    report = JSON.parse(readFileSync(output, 'utf8'));
  }, 60_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('counts failed tests, not the describe blocks and files around them', () => {
    // the old count: 1 failed test + 6 failed suites (2 describes and the file around the nested
    // failure, the describe and file of the failing hook, the file that did not load)
    expect(report.numFailedTests + report.numFailedTestSuites).toBe(7);
    // the nested failure, the file that did not load, the file whose hook threw
    expect(summarizeVitestReport(report).failed).toBe(3);
  });

  it('counts a file that fails to load and a failing hook as one failure each, without their kept-back tests as skipped', () => {
    const summary = summarizeVitestReport(report);
    expect(summary.failedFiles.map((file) => basename(file)).sort()).toEqual(['failing-hook.fixture.ts', 'fails-to-load.fixture.ts']);
    // the test beside the failing hook and the passing tests of the nested and skipped fixtures
    expect(summary.passed).toBe(3);
    // it.skip only: the two tests behind the failing hook belong to that file's failure
    expect(summary.skipped).toBe(1);
  });
});
