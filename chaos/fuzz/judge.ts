// Sends generated cases to a fuzz target one at a time and judges every answer: never a 5xx, every
// 4xx problem+json with a stable code, nothing stored for a refused request, always an answer.
import { checkProblem, isProblemContentType } from '../shared/problem.js';
import { sendRaw, type RawOutcome, type RawResponse } from '../shared/raw-http.js';
import { describeCase, toRawRequest, type FuzzCase } from './cases.js';
import type { FuzzTarget, StoredState } from './sample-target.js';

/** What went wrong with one case. */
export type ViolationKind =
  | '5xx'
  /** A 4xx written by the app (Express, Fastify, Nest, the sample) that is not problem+json. */
  | '4xx not problem+json'
  /**
   * A 4xx written by the HTTP server itself before any app code ran: Node's HTTP parser refusing
   * the framing or a missing Host, Fastify's clientError handler.
   */
  | '4xx not problem+json (HTTP parser)'
  | 'stored although refused'
  | 'no answer';

/** One broken expectation. */
export interface Violation {
  readonly kind: ViolationKind;
  readonly detail: string;
  readonly request: string;
}

/** Everything one fuzz run saw. */
export interface FuzzReport {
  readonly platform: string;
  readonly cases: number;
  /** Answers by status (`"no answer"` for none). */
  readonly statuses: Record<string, number>;
  /** Problem codes of the 4xx answers, with their counts. */
  readonly codes: Record<string, number>;
  /** Cases refused (4xx/5xx or no answer), each checked for left-behind records. */
  readonly refused: number;
  readonly violations: readonly Violation[];
}

/** Counts violations by kind (every kind present, zeros included). */
export function violationsByKind(report: FuzzReport): Record<ViolationKind, number> {
  const counts: Record<ViolationKind, number> = {
    '5xx': 0,
    '4xx not problem+json': 0,
    '4xx not problem+json (HTTP parser)': 0,
    'stored although refused': 0,
    'no answer': 0,
  };
  for (const violation of report.violations) counts[violation.kind]++;
  return counts;
}

/** Runs `cases` against `target` in order (one connection each) and judges every answer. */
export async function runFuzz(target: FuzzTarget, cases: readonly FuzzCase[]): Promise<FuzzReport> {
  const statuses: Record<string, number> = {};
  const codes: Record<string, number> = {};
  const violations: Violation[] = [];
  let refused = 0;
  for (const fuzzCase of cases) {
    const before = await target.stored();
    const outcome = await sendRaw(target.port, toRawRequest(fuzzCase), { timeoutMs: 15_000, pauseMs: 200 });
    const after = await target.stored();
    const label = outcome.kind === 'response' ? String(outcome.response.status) : 'no answer';
    statuses[label] = (statuses[label] ?? 0) + 1;
    const request = describeCase(fuzzCase);
    const found = judge(outcome, before, after, fuzzCase.method === 'HEAD');
    for (const violation of found.violations) violations.push({ ...violation, request });
    if (found.code) codes[found.code] = (codes[found.code] ?? 0) + 1;
    if (found.refused) refused++;
  }
  return { platform: target.platform, cases: cases.length, statuses, codes, refused, violations };
}

/** Judges one answer against the store before and after it (a HEAD answer has no body to check). */
export function judge(
  outcome: RawOutcome,
  before: StoredState,
  after: StoredState,
  head = false,
): { refused: boolean; code?: string; violations: Array<Omit<Violation, 'request'>> } {
  const violations: Array<Omit<Violation, 'request'>> = [];
  const changed = before.idempotencyRecords !== after.idempotencyRecords || before.reports !== after.reports || before.credits !== after.credits;
  if (outcome.kind !== 'response') {
    violations.push({ kind: 'no answer', detail: outcome.kind === 'closed' ? outcome.detail : 'no complete answer within 15 s' });
    if (changed) violations.push({ kind: 'stored although refused', detail: storedDetail(before, after) });
    return { refused: true, violations };
  }
  const { status, headers, body } = outcome.response;
  if (status < 400) return { refused: false, violations };
  let code: string | undefined;
  if (status >= 500) violations.push({ kind: '5xx', detail: `${status} ${body.toString('utf8', 0, 120)}` });
  else if (head) {
    if (!isProblemContentType(headers['content-type'])) violations.push({ kind: kindOf(outcome.response), detail: `${status} to HEAD: content-type ${headers['content-type'] ?? 'missing'}` });
  } else {
    const verdict = checkProblem(status, headers['content-type'], body.toString('utf8'));
    if (verdict.ok) code = verdict.code;
    else violations.push({ kind: kindOf(outcome.response), detail: `${status}: ${verdict.reason}` });
  }
  if (changed) violations.push({ kind: 'stored although refused', detail: `${status}; ${storedDetail(before, after)}` });
  return { refused: true, code, violations };
}

/**
 * Who wrote a 4xx that is not problem+json: Node's HTTP server itself (a parser error written
 * straight to the socket, without `Date`; or a bare answer without a body, such as a missing Host)
 * or Fastify's clientError handler (no `Date` either), before any app code ran; else the app.
 */
function kindOf(response: RawResponse): ViolationKind {
  const bare = response.headers['content-type'] === undefined && response.body.length === 0;
  return response.headers.date === undefined || bare ? '4xx not problem+json (HTTP parser)' : '4xx not problem+json';
}

function storedDetail(before: StoredState, after: StoredState): string {
  return `idempotency records ${before.idempotencyRecords}→${after.idempotencyRecords}, reports ${before.reports}→${after.reports}, credits ${before.credits}→${after.credits}`;
}

/** `{ '202': 310, '400': 120, … }` → `202×310 400×120 …`, by status. */
export function formatCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, count]) => `${name}×${count}`)
    .join(' ');
}
