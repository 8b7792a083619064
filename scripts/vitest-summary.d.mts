/** One file's entry in vitest's JSON report, as far as the summary reads it. */
export interface VitestReportFile {
  readonly name: string;
  readonly status: string;
  readonly assertionResults: readonly { readonly status: string }[];
}

/** The parts of vitest's JSON report the summary reads. */
export interface VitestReport {
  readonly numPassedTests: number;
  readonly numFailedTests: number;
  readonly testResults?: readonly VitestReportFile[];
}

/** What `npm test` reports: tests passed, tests and files failed, tests skipped. */
export interface VitestSummary {
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  /** Files that failed with no failed test in them (could not load, or a hook outside every test threw). */
  readonly failedFiles: string[];
}

/** Counts a vitest JSON report: tests, not suites; a file that failed on its own counts once. */
export function summarizeVitestReport(report: VitestReport): VitestSummary;
