// The counts `npm test` ends with, read from vitest's JSON report: tests, not suites (vitest's
// numFailedTestSuites counts every describe block and file around a failed test, so one failed test
// nested two describes deep would read as four failures).

/**
 * Counts a vitest JSON report. A file that failed with no failed test in it (it could not load, or a
 * hook outside every test threw) counts as one failure, and the tests it kept from running are not
 * counted again as skipped.
 * @param {{ numPassedTests: number, numFailedTests: number, testResults?: { name: string, status: string, assertionResults: { status: string }[] }[] }} report
 * @returns {{ passed: number, failed: number, skipped: number, failedFiles: string[] }}
 */
export function summarizeVitestReport(report) {
  const files = report.testResults ?? [];
  const failedFiles = files.filter((file) => file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed'));
  const skipped = files
    .filter((file) => !failedFiles.includes(file))
    .flatMap((file) => file.assertionResults)
    .filter((test) => test.status === 'skipped' || test.status === 'pending' || test.status === 'todo').length;
  return {
    passed: report.numPassedTests,
    failed: report.numFailedTests + failedFiles.length,
    skipped,
    failedFiles: failedFiles.map((file) => file.name),
  };
}
