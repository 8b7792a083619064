// The parts of a fault scenario's report that every store outage shares (PostgreSQL hanging,
// Redis down): the checks' shape, the answers counted as successes, how times and per-process
// recoveries are written, and the FAILED lines.
import { summarize } from './scenario.js';

/** One check of the figure. */
export interface FaultCheck {
  readonly name: string;
  readonly pass: boolean;
  /** What was measured, in words (shown when it fails). */
  readonly detail: string;
}

/** An HTTP exchange of a fault scenario's client, as the report reads it. */
interface Answered {
  /** HTTP status, 0 for a network error or an aborted (hung) request. */
  readonly status: number;
  readonly detail: string;
}

/** Whether the request succeeded (2xx). */
export const succeeded = (attempt: Answered): boolean => attempt.status >= 200 && attempt.status < 300;

/** `1234` ms → `1.23 s`. */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** {@link seconds}, or `never` for a time that never came (+∞). */
export const secondsOrNever = (ms: number): string => (Number.isFinite(ms) ? seconds(ms) : 'never');

/**
 * The check of the requests in flight when the fault began: each answered 2xx (it finished) or a
 * retryable problem; `wrong` are those that answered otherwise.
 */
export function inFlightCheck(name: string, caught: readonly Answered[], wrong: readonly Answered[]): FaultCheck {
  return { name, pass: wrong.length === 0, detail: `${caught.length} in flight, ${wrong.length} otherwise: ${summarize(wrong.map((a) => a.detail))}` };
}

/** `app-1 1.23 s, app-2 never (process EXITED)`: when each process succeeded again, and whether it is the one started. */
export function recoveries(processes: readonly { readonly name: string; readonly recoveryMs: number; readonly sameProcess: boolean }[]): string {
  return processes.map((p) => `${p.name} ${secondsOrNever(p.recoveryMs)}${p.sameProcess ? '' : ' (process EXITED)'}`).join(', ');
}

/** One `FAILED <check>: <detail>` line per check that did not pass. */
export function logFailedChecks(checks: readonly FaultCheck[], log: (line: string) => void): void {
  for (const check of checks) if (!check.pass) log(`FAILED ${check.name}: ${check.detail}`);
}
