// A silent PostgreSQL under traffic, shared by the chaos scenarios `postgres-hang` (every process of
// the cluster stopped with SIGSTOP, resumed with SIGCONT) and `partition` (the app's network to the
// cluster delayed, lossy, then cut), and by the fast subset in `npm test`
// (test/chaos/postgres-hang.e2e-spec.ts): two app processes (the multi-instance fixture, Express
// and Fastify, node-postgres `query_timeout` as the README advises), steady traffic on both
// idempotency modes, the fault, the way back, and every check the figure is held to.
//
// Clients behave as the README asks: each sends one operation (a fresh Idempotency-Key) and repeats
// it, honouring Retry-After, until it is acknowledged (2xx), then starts the next. Half of each
// process's clients use the transactional route (`POST /reports/tx`: the row is written in the
// request's transaction, on the cluster that goes silent), half the lease-mode route
// (`POST /reports`: the idempotency record is on that cluster, the handler's row on a second
// cluster that stays up, so that a row is exactly one run of the handler). Rows are counted from
// outside, per key, after the fault.
import { isRunning, killInstance, openFixtureDatabase, startInstance, type Instance } from '../../test/fixtures/idempotency/multi-instance.launcher.js';
import { distributionOf, formatDistribution } from '../shared/distribution.js';
import { readReportRows, type ReportRows } from '../shared/report-rows.js';
import { checkProblem, isRetryAfter } from '../shared/problem.js';
import { count, sleep, summarize } from '../shared/scenario.js';
import { inFlightCheck, logFailedChecks, recoveries, secondsOrNever, succeeded, type FaultCheck } from '../shared/fault-report.js';

/** The app processes: both platforms; the first one's handlers work longer, so some are inside them when the fault starts. */
const PROCESSES = [
  { platform: 'express', handlerDelayMs: 200 },
  { platform: 'fastify', handlerDelayMs: 20 },
] as const;
/** Clients per process and route, each with one operation at a time (16 clients in all). */
const CLIENTS_PER_ROUTE = 4;
/** Connections per process: one per concurrent request, plus one (see exactly-once in RELIABILITY.md). */
const POOL_SIZE = 2 * CLIENTS_PER_ROUTE + 1;
/** A request still unanswered after this long is aborted and counted as hung. */
const REQUEST_ABORT_MS = 60_000;

const ROUTES = { transactional: '/reports/tx', lease: '/reports' } as const;
type Mode = keyof typeof ROUTES;

/** How long each phase lasts, and the settings the bound is computed from. */
export interface PostgresFaultPlan {
  readonly trafficBeforeMs: number;
  readonly trafficAfterMs: number;
  /**
   * After new operations stop, how long the clients may take to get their last ones acknowledged:
   * longer than `leaseMs` (a claim the silent server applied late holds its key for one lease).
   */
  readonly drainLimitMs: number;
  /** node-postgres' `query_timeout` of the app's pools (the README's 5 000). */
  readonly queryTimeoutMs: number;
  /** Lease of the lease-mode route. */
  readonly leaseMs: number;
  /**
   * What a request may wait on top of its handler's work and `queryTimeoutMs` once the database
   * has gone silent: the documented margin (RELIABILITY.md, "How long a request can wait on a
   * silent store") plus what a loaded 2-core machine adds.
   */
  readonly marginMs: number;
  /** After the fault ends, each process acknowledges a new operation within this long. */
  readonly recoveryLimitMs: number;
}

/** The fault: starts when the traffic has run `trafficBeforeMs`, ends when `inject` resolves and `heal` has run. */
export interface PostgresFault {
  /** What it does, for the figure (`SIGSTOP of 8 processes for 8.0 s`). */
  describe(): string;
  /** Makes the database silent (or slow) and resolves when it should be healed; `silentAt` is called the moment nothing answers any more. */
  inject(marks: FaultMarks): Promise<void>;
  heal(): Promise<void>;
}

/** Times the fault reports, on this process' `performance.now()`. */
export interface FaultMarks {
  /** The database stops answering (SIGSTOP sent, black hole on). */
  silent(): void;
  /** It answers again (SIGCONT sent, black hole off). */
  answering(): void;
  /** It starts answering slowly or losing packets, before it goes silent (the partition's first phases). */
  slow?(): void;
}

/** Where the apps and the judge find the databases. */
export interface PostgresFaultDatabases {
  /** The cluster that goes silent (idempotency records, transactional rows), as the apps reach it. */
  readonly storeUrl: string;
  /** The same cluster as the judge reaches it (a Unix socket, which no network fault touches). */
  readonly storeJudgeUrl: string;
  /** The cluster that stays up (the lease-mode route's rows), as the apps reach it. */
  readonly effectsUrl: string;
  readonly effectsJudgeUrl: string;
}

export interface PostgresFaultResult {
  readonly figure: string;
  readonly threshold: string;
  readonly checks: readonly FaultCheck[];
  readonly data: Record<string, unknown>;
  /** Waits of the requests the fault caught (ms past their bound's start), for the distribution. */
  readonly waits: readonly number[];
}

/** One HTTP exchange. */
interface Attempt {
  readonly process: number;
  readonly mode: Mode;
  readonly key: string;
  readonly workMs: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** HTTP status, 0 for a network error or an aborted (hung) request. */
  readonly status: number;
  /** 503 or 409 problem+json with Retry-After. */
  readonly retryable: boolean;
  readonly detail: string;
  readonly rowId?: number;
  readonly retryAfterSeconds?: number;
}

const now = () => performance.now();

/**
 * Starts the app processes (prefix `label` for keys and names), runs the plan with `fault` and
 * judges it. The caller owns the databases (their schema is created here).
 */
export async function runPostgresFault(options: {
  root: string;
  label: string;
  databases: PostgresFaultDatabases;
  plan: PostgresFaultPlan;
  fault: PostgresFault;
  log: (line: string) => void;
}): Promise<PostgresFaultResult> {
  const { root, label, databases, plan, fault, log } = options;
  await Promise.all([databases.storeJudgeUrl, databases.effectsJudgeUrl].map(async (url) => (await openFixtureDatabase(url)).destroy()));
  const instances: Instance[] = [];
  try {
    instances.push(
      ...(await Promise.all(
        PROCESSES.map(({ platform, handlerDelayMs }, i) =>
          startInstance({
            root,
            name: `${label}${i}`,
            databaseUrl: databases.storeUrl,
            effectsDatabaseUrl: databases.effectsUrl,
            platform,
            leaseMs: plan.leaseMs,
            handlerDelayMs,
            poolSize: POOL_SIZE,
            queryTimeoutMs: plan.queryTimeoutMs,
          }),
        ),
      )),
    );
    return await drive(instances, label, databases, plan, fault, log);
  } finally {
    await Promise.all(instances.map(killInstance));
  }
}

async function drive(instances: readonly Instance[], label: string, databases: PostgresFaultDatabases, plan: PostgresFaultPlan, fault: PostgresFault, log: (line: string) => void): Promise<PostgresFaultResult> {
  const pids = instances.map((instance) => instance.child.pid);
  const attempts: Attempt[] = [];
  const acknowledged = new Map<string, { mode: Mode; rowId: number }>();
  const keysStarted: string[] = [];
  let acceptNew = true;
  let stopped = false;
  const pause = async (ms: number) => {
    const until = now() + ms;
    while (!stopped && now() < until) await sleep(Math.min(100, until - now()));
  };

  const client = async (processIndex: number, mode: Mode, client: number) => {
    const workMs = PROCESSES[processIndex]!.handlerDelayMs;
    for (let n = 0; acceptNew && !stopped; n++) {
      const key = `${label}-p${processIndex}-${mode}-c${client}-${n}`;
      keysStarted.push(key);
      while (!stopped) {
        const attempt = await post(instances[processIndex]!.url, processIndex, mode, key, workMs);
        attempts.push(attempt);
        if (attempt.rowId !== undefined) {
          acknowledged.set(key, { mode, rowId: attempt.rowId });
          break;
        }
        await pause((attempt.retryAfterSeconds ?? 1) * 1_000);
      }
    }
  };
  const clients = instances.flatMap((_, p) => (['transactional', 'lease'] as const).flatMap((mode) => Array.from({ length: CLIENTS_PER_ROUTE }, (_, c) => client(p, mode, c))));

  await sleep(plan.trafficBeforeMs);
  let silentAt = Number.NaN;
  let answeringAt = Number.NaN;
  let slowAt = Number.POSITIVE_INFINITY;
  const faultStart = now();
  await fault.inject({ silent: () => (silentAt = now()), answering: () => (answeringAt = now()), slow: () => (slowAt = now()) });
  await fault.heal();
  const healedAt = now();
  if (Number.isNaN(silentAt)) silentAt = faultStart;
  if (Number.isNaN(answeringAt)) answeringAt = healedAt;
  log(`${fault.describe()}; silent ${((answeringAt - silentAt) / 1000).toFixed(1)} s`);
  await sleep(plan.trafficAfterMs);
  acceptNew = false;
  const drained = await Promise.race([Promise.all(clients).then(() => true), sleep(plan.drainLimitMs).then(() => false)]);
  stopped = true;
  await Promise.all(clients);

  const rows = await readRows(databases, label);
  return judge({ instances, pids, attempts, acknowledged, keysStarted, drained, plan, fault, faultStart, slowAt, silentAt, answeringAt, healedAt, rows, log });
}

interface Observed {
  readonly instances: readonly Instance[];
  readonly pids: readonly (number | undefined)[];
  readonly attempts: readonly Attempt[];
  readonly acknowledged: ReadonlyMap<string, { mode: Mode; rowId: number }>;
  readonly keysStarted: readonly string[];
  readonly drained: boolean;
  readonly plan: PostgresFaultPlan;
  readonly fault: PostgresFault;
  readonly faultStart: number;
  /** When the database started answering slowly, before going silent (+∞ when it did not). */
  readonly slowAt: number;
  readonly silentAt: number;
  readonly answeringAt: number;
  readonly healedAt: number;
  readonly rows: Rows;
  readonly log: (line: string) => void;
}

function judge(observed: Observed): PostgresFaultResult {
  const { instances, pids, attempts, acknowledged, keysStarted, drained, plan, fault, faultStart, slowAt, silentAt, answeringAt, rows, log } = observed;

  // Sent once the database was silent and answered before it answered again: nothing can have succeeded.
  const duringFault = attempts.filter((a) => a.sentAt >= silentAt && a.answeredAt <= answeringAt);
  const wrongDuringFault = duringFault.filter((a) => !a.retryable);
  // In flight when it went silent: a 2xx (finished just before), or 503/409 + Retry-After.
  const caught = attempts.filter((a) => a.sentAt < silentAt && a.answeredAt >= silentAt);
  const wrongCaught = caught.filter((a) => !succeeded(a) && !a.retryable);
  // The whole run: 2xx, or 503/409 problem+json with Retry-After; never a hang or another error.
  const wrongAnywhere = attempts.filter((a) => !succeeded(a) && !a.retryable);

  // The bound: once the database is silent, a request waits at most its handler's work, one
  // query_timeout and the margin (counted from when it was sent, or from the silence if later).
  const boundOf = (a: Attempt) => a.workMs + plan.queryTimeoutMs + plan.marginMs;
  const exposed = attempts.filter((a) => a.answeredAt >= silentAt && a.sentAt <= answeringAt);
  const waitOf = (a: Attempt) => a.answeredAt - Math.max(a.sentAt, silentAt);
  const overBound = exposed.filter((a) => waitOf(a) > boundOf(a));
  // past the handler's work: what the store added
  const waits = exposed.map((a) => waitOf(a) - a.workMs);
  const distribution = distributionOf(waits);

  const perProcess = instances.map((instance, i) => {
    const first = attempts.filter((a) => a.process === i && succeeded(a) && a.sentAt >= answeringAt).sort((a, b) => a.answeredAt - b.answeredAt)[0];
    return {
      name: instance.name,
      recoveryMs: first ? first.answeredAt - answeringAt : Number.POSITIVE_INFINITY,
      sameProcess: isRunning(instance) && instance.child.pid === pids[i],
    };
  });
  const recoveryMs = Math.max(...perProcess.map((p) => p.recoveryMs));

  const lost = [...acknowledged].filter(([key, { mode, rowId }]) => (mode === 'transactional' ? rows.store : rows.effects).byId.get(rowId) !== key);
  const duplicates = [...rows.store.perKey, ...rows.effects.perKey].filter(([, n]) => n > 1);
  const neverAcknowledged = keysStarted.length - acknowledged.size;
  const statuses = new Map<string, number>();
  for (const a of attempts) statuses.set(a.detail, (statuses.get(a.detail) ?? 0) + 1);
  const byMode = (mode: Mode) => distributionOf(exposed.filter((a) => a.mode === mode).map((a) => waitOf(a) - a.workMs));
  // slow but answering (latency, loss): every statement may take up to query_timeout and succeed, so no one-timeout bound; reported
  const slowWaits = distributionOf(attempts.filter((a) => a.sentAt >= slowAt && a.answeredAt < silentAt).map((a) => a.answeredAt - a.sentAt - a.workMs));

  const checks: FaultCheck[] = [
    {
      name: 'every request sent while the database was silent answered 503 or 409 problem+json with Retry-After',
      pass: wrongDuringFault.length === 0,
      detail: `${duringFault.length} answered during the fault, ${wrongDuringFault.length} otherwise: ${summarize(wrongDuringFault.map((a) => a.detail))}`,
    },
    inFlightCheck('requests in flight when it went silent answered 2xx or 503/409 + Retry-After', caught, wrongCaught),
    {
      name: `every request answered within its handler's work + query_timeout (${plan.queryTimeoutMs} ms) + ${plan.marginMs} ms of the silence (or of its sending, if later)`,
      pass: overBound.length === 0,
      detail: `${exposed.length} exposed; wait past the handler's work p50 ${Math.round(distribution.p50)} ms, p99 ${Math.round(distribution.p99)} ms, max ${Math.round(distribution.max)} ms; ${overBound.length} over the bound: ${summarize(overBound.map((a) => `${a.mode} ${a.key} ${Math.round(waitOf(a))} ms (${a.detail})`))}`,
    },
    {
      name: 'no other answer in the whole run: 2xx, or 503/409 problem+json with Retry-After; no network error or hang',
      pass: wrongAnywhere.length === 0,
      detail: `${wrongAnywhere.length} other answers: ${summarize(wrongAnywhere.map((a) => a.detail))}`,
    },
    {
      name: `each process acknowledged a new write within ${plan.recoveryLimitMs / 1000} s of the database answering again, without a restart`,
      pass: recoveryMs <= plan.recoveryLimitMs && perProcess.every((p) => p.sameProcess),
      detail: recoveries(perProcess),
    },
    {
      name: 'counted from outside: every acknowledged row is there (0 lost), no key has two rows (0 duplicates), every operation acknowledged',
      pass: lost.length === 0 && duplicates.length === 0 && neverAcknowledged === 0 && drained,
      detail: `${lost.length} lost of ${acknowledged.size} acknowledged (${summarize(lost.map(([key]) => key))}), ${duplicates.length} keys with several rows (${summarize(duplicates.map(([key, n]) => `${key} × ${n}`))}), ${neverAcknowledged} never acknowledged, drained ${drained ? 'in time' : `NOT within ${plan.drainLimitMs / 1000} s`}`,
    },
  ];
  log(
    `${count(attempts.length)} requests for ${count(keysStarted.length)} operations (${[...statuses].map(([detail, n]) => `${detail} × ${n}`).join(', ')}); ` +
      `${caught.length} in flight when it went silent (${caught.filter(succeeded).length} → 2xx); ` +
      `waits past the handler's work once silent: transactional ${formatDistribution(byMode('transactional'))}, lease ${formatDistribution(byMode('lease'))}` +
      (Number.isFinite(slowAt) ? `; while slow but answering: ${formatDistribution(slowWaits)}` : ''),
  );
  logFailedChecks(checks, log);

  return {
    figure:
      `${fault.describe()}: ${count(duringFault.length)} answers during it, ${wrongDuringFault.length} not 503/409 + Retry-After; ${caught.length} in flight when it went silent (${caught.filter(succeeded).length} → 2xx, ${wrongCaught.length} other); ` +
      `wait past the handler's work p50 ${Math.round(distribution.p50)} / p99 ${Math.round(distribution.p99)} / max ${Math.round(distribution.max)} ms over ${exposed.length} requests (bound ${plan.queryTimeoutMs} + ${plan.marginMs} ms, ${overBound.length} over)` +
      (Number.isFinite(slowAt) ? `, while slow but answering ${formatDistribution(slowWaits)}` : '') +
      '; ' +
      `recovered ${secondsOrNever(recoveryMs)} after it without a restart; ` +
      `${lost.length} lost of ${count(acknowledged.size)} acknowledged writes, ${duplicates.length} duplicates (rows counted per key), ${neverAcknowledged} never acknowledged, ${wrongAnywhere.length} other answers`,
    threshold: `only 503/409 + Retry-After during the fault, every wait ≤ work + ${plan.queryTimeoutMs} + ${plan.marginMs} ms, recovery ≤ ${plan.recoveryLimitMs / 1000} s, 0 lost, 0 duplicates`,
    checks,
    waits,
    data: {
      fault: fault.describe(),
      silentMs: answeringAt - silentAt,
      injectTookMs: silentAt - faultStart,
      requests: attempts.length,
      operations: keysStarted.length,
      acknowledged: acknowledged.size,
      statuses: Object.fromEntries(statuses),
      answeredDuringFault: duringFault.length,
      inFlightWhenSilent: caught.length,
      waitsMs: { all: distribution, transactional: byMode('transactional'), lease: byMode('lease'), ...(Number.isFinite(slowAt) ? { whileSlow: slowWaits } : {}) },
      boundMs: { queryTimeoutMs: plan.queryTimeoutMs, marginMs: plan.marginMs },
      overBound: overBound.map((a) => ({ mode: a.mode, key: a.key, waitMs: Math.round(waitOf(a)), detail: a.detail })),
      recoveryMs,
      lost: lost.length,
      duplicates: duplicates.length,
      neverAcknowledged,
      checks,
    },
  };
}

/** `POST` with its key, judged. */
async function post(url: string, processIndex: number, mode: Mode, key: string, workMs: number): Promise<Attempt> {
  const sentAt = now();
  const base = { process: processIndex, mode, key, workMs, sentAt };
  try {
    const res = await fetch(`${url}${ROUTES[mode]}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ title: key }),
      signal: AbortSignal.timeout(REQUEST_ABORT_MS),
    });
    const text = await res.text();
    const answeredAt = now();
    if (res.status >= 200 && res.status < 300) {
      return { ...base, answeredAt, status: res.status, retryable: false, detail: `${res.status}`, rowId: Number((JSON.parse(text) as { id: unknown }).id) };
    }
    const problem = checkProblem(res.status, res.headers.get('content-type'), text);
    const retryAfter = res.headers.get('retry-after');
    const retryable = (res.status === 503 || res.status === 409) && problem.ok && isRetryAfter(retryAfter);
    return {
      ...base,
      answeredAt,
      status: res.status,
      retryable,
      detail: problem.ok ? `${res.status} ${problem.code}${retryAfter ? '' : ' without Retry-After'}` : `${res.status} ${problem.reason}`,
      ...(retryable ? { retryAfterSeconds: Number(retryAfter) || 1 } : {}),
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    return { ...base, answeredAt: now(), status: 0, retryable: false, detail: `network error ${cause}` };
  }
}

interface Rows {
  readonly store: ReportRows;
  readonly effects: ReportRows;
}

/** The run's rows of both clusters, read from outside through their judge URLs. */
async function readRows(databases: PostgresFaultDatabases, label: string): Promise<Rows> {
  const [store, effects] = await Promise.all([readReportRows(databases.storeJudgeUrl, `${label}-%`), readReportRows(databases.effectsJudgeUrl, `${label}-%`)]);
  return { store, effects };
}
