// What a chaos scenario is and how its result is printed: one figure line, PASS or FAIL against
// the threshold, the duration.

/** What a scenario measured. */
export interface Verdict {
  /** The figure, in one line (what was measured, with the numbers). */
  readonly figure: string;
  /** The threshold the figure is held to, in words. */
  readonly threshold: string;
  readonly pass: boolean;
  /** The scenario could not run here (it says why in `figure`); `pass` tells whether that is allowed (not with CI=true). */
  readonly skipped?: boolean;
  /** The numbers behind the figure, for chaos/results/last-run.json. */
  readonly data?: Record<string, unknown>;
}

/** Settings every scenario reads. */
export interface ChaosContext {
  /** Progress lines (stderr), indented under the scenario's header. */
  log(line: string): void;
  /** Seed of generated inputs (fuzz cases, load jitter), printed so a run can be repeated. */
  readonly seed: number;
  readonly env: NodeJS.ProcessEnv;
}

/** One scenario of `npm run chaos`. */
export interface Scenario {
  /** Short id, used by `--only=` and in the results. */
  readonly id: string;
  readonly title: string;
  run(context: ChaosContext): Promise<Verdict>;
}

/** A scenario's verdict with its name and duration. */
export interface ScenarioResult extends Verdict {
  readonly id: string;
  readonly title: string;
  readonly seconds: number;
}

/** The figure line: `PASS exactly-once  <figure>  [threshold: …]  (12.3 s)`. */
export function figureLine(result: ScenarioResult): string {
  return `${result.skipped ? (result.pass ? 'SKIP' : 'FAIL (skipped)') : result.pass ? 'PASS' : 'FAIL'} ${result.id}: ${result.figure} [threshold: ${result.threshold}] (${result.seconds.toFixed(1)} s)`;
}

/** `1234` → `1,234`. */
export function count(value: number): string {
  return value.toLocaleString('en-US');
}

/** Waits `ms` of real time. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The first few of a list of descriptions, with their count. */
export function summarize(items: readonly string[]): string {
  if (items.length === 0) return 'none';
  return `${items.slice(0, 5).join('; ')}${items.length > 5 ? `; … ${items.length - 5} more` : ''}`;
}
