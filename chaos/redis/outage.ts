// The Redis outage, shared by the chaos scenarios (chaos/scenarios/redis-outage.ts, redis-hang.ts)
// and the fast subset in `npm test` (test/multi-process/chaos/redis-outage.spec.ts): app processes on one
// redis-server of the caller's, steady traffic, the server killed (SIGKILL) mid-traffic, kept down,
// started again on the same port (empty: nothing is persisted) — or, with `fault: 'freeze'`,
// stopped with SIGSTOP (connections open, nothing answers) and resumed with SIGCONT — and every
// check the figure is held to.
//
// Idempotent clients behave as the README asks: each sends one operation (a fresh Idempotency-Key)
// and repeats it, honouring Retry-After, until it is acknowledged (2xx), then starts the next.
// Clients of the shared-breaker route send one GET after the other.
import { DEFAULT_SHARED_STATE_MAX_WAIT } from 'nest-resilience/core';
import type { ThrowawayRedis } from '../../scripts/redis.mjs';
import { spawnApp, type SpawnedApp } from '../../test/fixtures/spawn-app.js';
import { distributionOf, formatDistribution, percentile } from '../shared/distribution.js';
import { checkProblem, isRetryAfter } from '../shared/problem.js';
import { count, sleep, summarize } from '../shared/scenario.js';
import { inFlightCheck, logFailedChecks, recoveries, seconds, secondsOrNever, succeeded, type FaultCheck } from '../shared/fault-report.js';

/** Where `npm run build:sample` puts the app, relative to the package root. */
export const REDIS_OUTAGE_APP = 'build/chaos/redis/redis-outage.app.js';

/** The app processes: both platforms, both Redis clients the library supports. */
const PROCESSES = [
  { platform: 'express', client: 'ioredis' },
  { platform: 'fastify', client: 'node-redis' },
] as const;
/** The store's `commandTimeoutMs` (its default, set so the hang bound below reads it). */
const COMMAND_TIMEOUT_MS = 1_000;
/** Handler work of the slow idempotent clients: long enough that some are inside it at the kill. */
const SLOW_WORK_MS = 300;
const FAST_WORK_MS = 20;
/** Idempotent clients per process, half slow, half fast. */
const IDEMPOTENT_CLIENTS = 6;
/** Clients of the shared-breaker route per process; every fourth call fails its first attempt. */
const FORECAST_CLIENTS = 2;
const FORECAST_PAUSE_MS = 10;
const FLAKY_EVERY = 4;
/** Loopback HTTP, event loops and GC of a loaded 2-core machine, on top of the documented bounds. */
const HANG_MARGIN_MS = 500;
const FORECAST_MARGIN_MS = 100;
/**
 * After the restart, a process answers a 2xx within this long: the clients' reconnect backoff (ioredis
 * caps it at 2 s) plus the clients' 1 s Retry-After, plus margin.
 */
const RECOVERY_LIMIT_MS = 5_000;
/** A request still unanswered after this long is aborted and counted as hung. */
const REQUEST_ABORT_MS = 15_000;
/**
 * How late an `EXECUTED` line may reach us after the handler started before the kill. A client
 * waits Retry-After (1 s) before resending, so no line of a later attempt can fall inside it.
 */
const PIPE_SLACK_MS = 250;

/** How long each phase lasts. */
export interface RedisOutagePlan {
  readonly trafficBeforeMs: number;
  /** From the end of the kill to the restart. */
  readonly outageMs: number;
  readonly trafficAfterMs: number;
  /**
   * After new operations stop, how long the clients may take to get their last ones acknowledged:
   * longer than `leaseMs`.
   */
  readonly drainLimitMs: number;
  /**
   * Lease of the idempotent route. A claim in flight at the kill may be resent by the ioredis client
   * once it reconnects (`autoResendUnfulfilledCommands`, as the README says): its key then answers
   * 409 until the lease ends. Far shorter than the default 60 s, so such keys are acknowledged in
   * the drain.
   */
  readonly leaseMs: number;
  /**
   * `kill`: SIGKILL, then a fresh server on the same port. `freeze`: SIGSTOP, then SIGCONT (the
   * connections stay open and silent; commands sent meanwhile run when it resumes). Or a fault of
   * the caller's (the partition's network faults), silent like `freeze`.
   * @default 'kill'
   */
  readonly fault?: 'kill' | 'freeze' | RedisFault;
  /** After the fault, each process acknowledges a write within this long. @default 5_000 */
  readonly recoveryLimitMs?: number;
}

/** A fault of the caller's: Redis is silent (connections open, no answer) from `begin()` to `end()`. */
export interface RedisFault {
  /** For the figure (`black hole`). */
  readonly name: string;
  /**
   * Starts the fault; calls `slow()` when Redis starts answering slowly or losing packets (if it
   * does), `silent()` the moment it stops answering (the outage is counted from then: whatever the
   * fault does before counts as traffic before it), and resolves once it is silent.
   */
  begin(log: (line: string) => void, silent: () => void, slow: () => void): Promise<void>;
  /** Resolves once Redis answers again. */
  end(log: (line: string) => void): Promise<void>;
}

/** The plan's fault on `redis`, as begin / end. */
function faultOf(plan: RedisOutagePlan, redis: Pick<ThrowawayRedis, 'kill' | 'start' | 'freeze' | 'thaw'>): RedisFault & { readonly silent: boolean } {
  const fault = plan.fault ?? 'kill';
  if (fault === 'kill') {
    return {
      name: 'outage',
      silent: false,
      begin: async (log, silent) => {
        const started = now();
        silent();
        await redis.kill();
        log(`redis-server killed (SIGKILL, ${(now() - started).toFixed(0)} ms)`);
      },
      end: async (log) => {
        const started = now();
        await redis.start();
        log(`redis-server restarted on the same port (empty: nothing persisted; start took ${(now() - started).toFixed(0)} ms)`);
      },
    };
  }
  if (fault === 'freeze') {
    return {
      name: 'SIGSTOP',
      silent: true,
      begin: async (log, silent) => {
        silent();
        redis.freeze();
        log('redis-server stopped with SIGSTOP (its own pid)');
      },
      end: async (log) => {
        redis.thaw();
        log('redis-server resumed with SIGCONT');
      },
    };
  }
  return { ...fault, silent: true, begin: (log, silent, slow) => fault.begin(log, silent, slow), end: (log) => fault.end(log) };
}

export interface RedisOutageResult {
  readonly figure: string;
  readonly threshold: string;
  readonly checks: readonly FaultCheck[];
  readonly data: Record<string, unknown>;
}

/** One HTTP exchange of an idempotent client. */
interface Attempt {
  readonly process: number;
  readonly key: string;
  readonly workMs: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** HTTP status, 0 for a network error or an aborted (hung) request. */
  readonly status: number;
  /** 503 problem+json `idempotency_store_unavailable` with Retry-After. */
  readonly storeUnavailable: boolean;
  /** The problem's `code`, if any. */
  readonly code?: string;
  /** Any 503 problem+json with Retry-After. */
  readonly retryable503: boolean;
  readonly detail: string;
  readonly retryAfterSeconds?: number;
}

/** One call of the shared-breaker route. */
interface ForecastCall {
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly status: number;
}

/** A stdout line of an app process with the time it reached us. */
interface TimedLine {
  readonly at: number;
  readonly text: string;
}

interface RunningProcess {
  readonly label: string;
  readonly app: SpawnedApp;
  readonly pid: number | undefined;
  readonly timed: TimedLine[];
}

const now = () => performance.now();

/** Starts the app processes on `redis`, runs the plan and judges it. The caller owns `redis` (it is left running). */
export async function runRedisOutage(options: {
  root: string;
  /** The server, or (with a fault of the caller's) only where the apps reach it. */
  redis: Pick<ThrowawayRedis, 'url' | 'kill' | 'start' | 'freeze' | 'thaw'>;
  plan: RedisOutagePlan;
  log: (line: string) => void;
}): Promise<RedisOutageResult> {
  const { root, redis, plan, log } = options;
  const processes: RunningProcess[] = [];
  try {
    const apps = await Promise.all(
      PROCESSES.map(({ platform, client }, i) =>
        spawnApp(root, REDIS_OUTAGE_APP, `r${i}`, {
          REDIS_URL: redis.url,
          KEY_PREFIX: 'chaos:',
          PLATFORM: platform,
          REDIS_CLIENT: client,
          COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
          LEASE_MS: String(plan.leaseMs),
        }),
      ),
    );
    processes.push(...apps.map((app, i) => ({ label: `${PROCESSES[i]!.platform}+${PROCESSES[i]!.client}`, app, pid: app.child.pid, timed: timedLines(app) })));
    await warmUp(processes);
    return await drive(processes, redis, plan, log);
  } finally {
    await Promise.all(processes.map(({ app }) => killApp(app)));
  }
}

async function drive(processes: readonly RunningProcess[], redis: Pick<ThrowawayRedis, 'kill' | 'start' | 'freeze' | 'thaw'>, plan: RedisOutagePlan, log: (line: string) => void): Promise<RedisOutageResult> {
  const attempts: Attempt[] = [];
  const forecasts: ForecastCall[] = [];
  const acknowledged = new Set<string>();
  const keysStarted: string[] = [];
  let acceptNew = true;
  let stopped = false;
  /** Waits like `sleep`, but no longer than until the clients are stopped. */
  const pause = async (ms: number) => {
    const until = now() + ms;
    // The time left is read once per step: read twice (once to test, once to wait), a loaded machine
    // can deschedule the process between the readings and the wait turns negative
    // (TimeoutNegativeWarning).
    for (let left = ms; !stopped && left > 0; left = until - now()) await sleep(Math.min(100, left));
  };

  const idempotentClient = async (processIndex: number, client: number) => {
    const workMs = client % 2 === 0 ? SLOW_WORK_MS : FAST_WORK_MS;
    for (let n = 0; acceptNew && !stopped; n++) {
      const key = `outage-p${processIndex}-c${client}-${n}`;
      keysStarted.push(key);
      while (!stopped) {
        const attempt = await postOrder(processes[processIndex]!.app.url, processIndex, key, workMs);
        attempts.push(attempt);
        if (attempt.status >= 200 && attempt.status < 300) {
          acknowledged.add(key);
          break;
        }
        await pause((attempt.retryAfterSeconds ?? 1) * 1_000);
      }
    }
  };
  const forecastClient = async (processIndex: number, client: number) => {
    for (let n = 0; acceptNew && !stopped; n++) {
      const flaky = (n * FORECAST_CLIENTS + client) % FLAKY_EVERY === 0;
      const sentAt = now();
      let status = 0;
      try {
        const res = await fetch(`${processes[processIndex]!.app.url}/forecast${flaky ? '?flaky=1' : ''}`, { signal: AbortSignal.timeout(REQUEST_ABORT_MS) });
        await res.text();
        status = res.status;
      } catch {
        // a network error or a hung request: status 0
      }
      forecasts.push({ sentAt, answeredAt: now(), status });
      await pause(FORECAST_PAUSE_MS);
    }
  };
  const idempotentClients = processes.flatMap((_, p) => Array.from({ length: IDEMPOTENT_CLIENTS }, (_, c) => idempotentClient(p, c)));
  const forecastClients = processes.flatMap((_, p) => Array.from({ length: FORECAST_CLIENTS }, (_, c) => forecastClient(p, c)));

  const fault = faultOf(plan, redis);
  await sleep(plan.trafficBeforeMs);
  let killAt = Number.NaN;
  let slowFrom = Number.POSITIVE_INFINITY;
  await fault.begin(
    log,
    () => (killAt = now()),
    () => (slowFrom = now()),
  );
  const killDone = now();
  if (Number.isNaN(killAt)) killAt = killDone;
  await sleep(plan.outageMs);
  const restartAt = now();
  await fault.end(log);
  const restartDone = now();
  log(`${fault.name} ended after ${((restartAt - killDone) / 1000).toFixed(1)} s`);
  await sleep(plan.trafficAfterMs);
  acceptNew = false;
  const drained = await Promise.race([Promise.all(idempotentClients).then(() => true), sleep(plan.drainLimitMs).then(() => false)]);
  stopped = true;
  await Promise.all([...idempotentClients, ...forecastClients]);

  return judge({ processes, attempts, forecasts, acknowledged, keysStarted, drained, plan, fault, slowFrom, killAt, killDone, restartAt, restartDone, log });
}

interface Observed {
  readonly processes: readonly RunningProcess[];
  readonly attempts: readonly Attempt[];
  readonly forecasts: readonly ForecastCall[];
  readonly acknowledged: ReadonlySet<string>;
  readonly keysStarted: readonly string[];
  readonly drained: boolean;
  readonly plan: RedisOutagePlan;
  readonly fault: RedisFault & { readonly silent: boolean };
  /** When Redis started answering slowly (latency, loss) before going silent; +∞ when it did not. */
  readonly slowFrom: number;
  readonly killAt: number;
  readonly killDone: number;
  readonly restartAt: number;
  readonly restartDone: number;
  readonly log: (line: string) => void;
}

function judge(observed: Observed): RedisOutageResult {
  const { processes, attempts, forecasts, acknowledged, keysStarted, drained, plan, fault, slowFrom, killAt, killDone, restartAt, restartDone, log } = observed;

  // Sent once the server was gone, answered before it was started again.
  const duringOutage = attempts.filter((a) => a.sentAt >= killDone && a.answeredAt <= restartAt);
  // a stopped server times commands out (the connection stays open); a dead one refuses them
  const storeCodes = fault.silent ? ['idempotency_store_timeout', 'idempotency_store_unavailable'] : ['idempotency_store_unavailable'];
  const wrongDuringOutage = duringOutage.filter((a) => !a.retryable503 || !storeCodes.includes(a.code ?? ''));
  // In flight at the kill: a 2xx (the handler had run: its response is delivered even when storing it fails) or a 503 to retry.
  const caught = attempts.filter((a) => a.sentAt < killDone && a.answeredAt >= killAt);
  const wrongCaught = caught.filter((a) => !succeeded(a) && !a.retryable503);
  const caughtInsideHandler = caught.filter((a) => a.workMs === SLOW_WORK_MS && succeeded(a));

  const executions = processes.flatMap(({ timed }) => timed.filter((l) => l.text.startsWith('EXECUTED ')).map((l) => ({ at: l.at, key: l.text.slice('EXECUTED '.length) })));
  const runsWhileDown = executions.filter((e) => e.at > killDone + PIPE_SLACK_MS && e.at < restartAt);
  const runsPerKey = new Map<string, number>();
  for (const { key } of executions) runsPerKey.set(key, (runsPerKey.get(key) ?? 0) + 1);
  const ranTwice = [...runsPerKey].filter(([, n]) => n > 1);
  const acknowledgedNotRunOnce = [...acknowledged].filter((key) => runsPerKey.get(key) !== 1);
  const neverAcknowledged = keysStarted.length - acknowledged.size;

  // A request makes two store operations (claim, then complete or release), each bounded by
  // commandTimeoutMs. Silent Redis: the first that times out ends the request. Slow Redis (added
  // latency, lost packets): both may take almost that long and still succeed.
  const slowWhileSent = (a: Attempt) => a.answeredAt >= slowFrom && a.sentAt < killDone;
  const hangBoundMs = (a: Attempt) => a.workMs + (slowWhileSent(a) ? 2 : 1) * COMMAND_TIMEOUT_MS + HANG_MARGIN_MS;
  const hung = attempts.filter((a) => a.answeredAt - a.sentAt > hangBoundMs(a));
  const slowest = attempts.reduce((max, a) => Math.max(max, a.answeredAt - a.sentAt), 0);
  // requests the fault caught: wait past the handler's work, counted from the fault (or the sending, if later)
  const exposedWaits = distributionOf(attempts.filter((a) => a.answeredAt >= killDone && a.sentAt <= restartAt).map((a) => a.answeredAt - Math.max(a.sentAt, killDone) - a.workMs));

  const forecastsDuringOutage = forecasts.filter((f) => f.sentAt >= killDone && f.answeredAt <= restartAt);
  const forecastP99 = percentile(forecastsDuringOutage.map((f) => f.answeredAt - f.sentAt), 0.99);
  const forecastP99Before = percentile(forecasts.filter((f) => f.answeredAt < killAt).map((f) => f.answeredAt - f.sentAt), 0.99);
  // the outage may add at most maxWait + the margin to what the route cost before it: on a loaded
  // machine (a shared CI runner) the route's own p99 is already hundreds of ms, and that is not
  // time spent waiting on Redis
  const forecastBoundMs = DEFAULT_SHARED_STATE_MAX_WAIT + FORECAST_MARGIN_MS + Math.round(forecastP99Before);
  const recoveryLimitMs = plan.recoveryLimitMs ?? RECOVERY_LIMIT_MS;
  const forecastsNot200 = forecasts.filter((f) => f.status !== 200);

  const perProcess = processes.map(({ label, app, pid, timed }, i) => {
    const events = timed.filter((l) => l.text.startsWith('EVENT ')).map((l) => ({ at: l.at, ...(JSON.parse(l.text.slice(6)) as { event: string; cause?: string }) }));
    for (const e of events.filter((e) => e.event.startsWith('shared_state_'))) {
      log(`${label}: ${e.event} ${seconds(e.at - killDone)} after the kill${e.cause ? ` (${e.cause})` : ''}`);
    }
    const shared = events.filter((e) => e.event.startsWith('shared_state_'));
    // Three late answers in a row fall back while Redis is up too (a loaded machine, as documented):
    // counted apart, and a process may then already use in-process state when Redis dies.
    const fallbacksWhileUp = shared.filter((e) => e.event === 'shared_state_unavailable' && (e.at < killAt || e.at >= restartAt)).length;
    const upAtKill = shared.filter((e) => e.at < killAt).at(-1)?.event !== 'shared_state_unavailable';
    const inOutage = shared.filter((e) => e.at >= killAt && e.at < restartAt);
    const unavailable = inOutage.filter((e) => e.event === 'shared_state_unavailable');
    const recovered = shared.filter((e) => e.event === 'shared_state_recovered' && e.at >= restartAt);
    const firstAck = attempts.filter((a) => a.process === i && succeeded(a) && a.sentAt >= restartDone).sort((a, b) => a.answeredAt - b.answeredAt)[0];
    return {
      label,
      recoveryMs: firstAck ? firstAck.answeredAt - restartDone : Number.POSITIVE_INFINITY,
      fallbackMs: unavailable[0] ? unavailable[0].at - killDone : Number.POSITIVE_INFINITY,
      sharedBackMs: recovered[0] ? recovered[0].at - restartDone : Number.POSITIVE_INFINITY,
      // one event each per outage: in-process once Redis is gone (unless it already was), shared again only after the restart
      eventsOk: unavailable.length === (upAtKill ? 1 : 0) && inOutage.length === unavailable.length && recovered.length >= 1,
      events: `${unavailable.length}${upAtKill ? '' : ' (already in-process at the kill)'} shared_state_unavailable and ${inOutage.length - unavailable.length} shared_state_recovered in the outage, ${recovered.length} shared_state_recovered after it`,
      fallbacksWhileUp,
      sameProcess: app.child.exitCode === null && app.child.signalCode === null && app.child.pid === pid,
      // the app's own clients listen to their errors: such lines come from connections the library opened
      unhandledClientErrors: app.stderr().split('\n').filter((text) => text.includes('Unhandled error event')).length,
    };
  });
  const recoveryMs = Math.max(...perProcess.map((p) => p.recoveryMs));

  // a claim resent after the reconnect holds its key until the lease ends (see RedisOutagePlan.leaseMs)
  const heldAfterRestart = new Set(attempts.filter((a) => a.status === 409 && a.sentAt >= restartDone).map((a) => a.key));
  const otherErrors = attempts.filter((a) => a.status === 0 || (a.status >= 500 && !a.retryable503) || (a.status >= 400 && a.status < 500 && a.status !== 409));

  const checks: FaultCheck[] = [
    {
      name: `every idempotent request during the outage answered 503 problem+json ${storeCodes.join(' or ')} with Retry-After`,
      pass: duringOutage.length > 0 && wrongDuringOutage.length === 0,
      detail: `${duringOutage.length} answered during the outage, ${wrongDuringOutage.length} otherwise: ${summarize(wrongDuringOutage.map((a) => a.detail))}`,
    },
    inFlightCheck('requests in flight at the kill answered 2xx (handler ran) or 503 + Retry-After', caught, wrongCaught),
    {
      name: 'no idempotent handler ran while Redis was down',
      pass: runsWhileDown.length === 0,
      detail: `${runsWhileDown.length} handler runs between the kill and the restart: ${summarize(runsWhileDown.map((e) => e.key))}`,
    },
    {
      name: `no idempotent request took longer than its handler's work + commandTimeoutMs (${COMMAND_TIMEOUT_MS} ms) + ${HANG_MARGIN_MS} ms (two commandTimeoutMs while Redis was slow but answering)`,
      pass: hung.length === 0,
      detail: `slowest ${Math.round(slowest)} ms; ${hung.length} over the bound: ${summarize(hung.map((a) => `${a.key} ${Math.round(a.answeredAt - a.sentAt)} ms (${a.detail})`))}`,
    },
    {
      name: `the shared-breaker route kept answering 200, p99 during the outage ≤ maxWait (${DEFAULT_SHARED_STATE_MAX_WAIT} ms) + ${FORECAST_MARGIN_MS} ms + its p99 before the outage`,
      pass: forecastsDuringOutage.length > 0 && forecastP99 <= forecastBoundMs && forecastsNot200.length === 0,
      detail: `${forecastsDuringOutage.length} calls during the outage, p99 ${Math.round(forecastP99)} ms (before it ${Math.round(forecastP99Before)} ms); ${forecastsNot200.length} of ${forecasts.length} not 200: ${summarize(forecastsNot200.map((f) => String(f.status)))}`,
    },
    {
      name: 'each process fell back to in-process state once in the outage and went back to the shared state after the restart',
      pass: perProcess.every((p) => p.eventsOk),
      detail: perProcess.map((p) => `${p.label}: ${p.events}`).join('; '),
    },
    {
      name: "no '[ioredis] Unhandled error event' on the processes' stderr (their own clients listen to errors)",
      pass: perProcess.every((p) => p.unhandledClientErrors === 0),
      detail: perProcess.map((p) => `${p.label}: ${p.unhandledClientErrors}`).join(', '),
    },
    {
      name: `idempotent requests succeeded again within ${recoveryLimitMs / 1000} s of the restart, without restarting the app`,
      pass: recoveryMs <= recoveryLimitMs && perProcess.every((p) => p.sameProcess) && drained,
      detail: `${recoveries(perProcess.map((p) => ({ ...p, name: p.label })))}; drained ${drained ? 'in time' : `NOT within ${plan.drainLimitMs / 1000} s`}`,
    },
    {
      name: 'exactly once: no key ran twice, every acknowledged key ran once, every operation acknowledged',
      pass: ranTwice.length === 0 && acknowledgedNotRunOnce.length === 0 && neverAcknowledged === 0,
      detail: `${ranTwice.length} keys ran twice (${summarize(ranTwice.map(([key, n]) => `${key} × ${n}`))}), ${acknowledgedNotRunOnce.length} acknowledged keys not run exactly once, ${neverAcknowledged} never acknowledged`,
    },
    {
      name: 'no other answer: no network error, every 5xx 503 + Retry-After problem+json, no 4xx but 409',
      pass: otherErrors.length === 0,
      detail: `${otherErrors.length} other answers: ${summarize(otherErrors.map((a) => a.detail))}`,
    },
  ];

  log(
    `${count(attempts.length)} idempotent requests for ${count(keysStarted.length)} operations, ${count(forecasts.length)} shared-breaker calls; ` +
      `${caught.length} idempotent requests in flight at the kill (${caughtInsideHandler.length} inside a slow handler, answered 2xx); ` +
      `${heldAfterRestart.size} keys answered 409 after the restart (a claim resent by the client after it reconnected holds the key until its lease ends)`,
  );
  for (const p of perProcess) {
    log(`${p.label}: in-process state ${Number.isFinite(p.fallbackMs) ? `${Math.round(p.fallbackMs)} ms` : 'never'} after the kill, shared state back ${secondsOrNever(p.sharedBackMs)} after the restart, idempotent 2xx again ${secondsOrNever(p.recoveryMs)} after it`);
    if (p.fallbacksWhileUp > 0) log(`${p.label}: ${p.fallbacksWhileUp} fallback(s) to in-process state while Redis was up (late answers)`);
  }
  logFailedChecks(checks, log);

  return {
    figure:
      `${fault.name} ${seconds(restartAt - killDone)}, ${processes.length} processes (${perProcess.map((p) => p.label).join(', ')}): ` +
      `${count(duringOutage.length)} idempotent answers during it, ${wrongDuringOutage.length} not 503 ${storeCodes.join('/')} + Retry-After, ${runsWhileDown.length} handler runs while down; ` +
      `${caught.length} in flight at the kill (${caughtInsideHandler.length} inside handlers → 2xx, ${wrongCaught.length} other); ` +
      `slowest idempotent answer ${Math.round(slowest)} ms (${hung.length} over work + ${COMMAND_TIMEOUT_MS} + ${HANG_MARGIN_MS} ms; waits past the work once down ${formatDistribution(exposedWaits)}); ` +
      `shared-breaker route p99 ${Math.round(forecastP99)} ms during the outage over ${count(forecastsDuringOutage.length)} calls (${Math.round(forecastP99Before)} ms before), ${forecastsNot200.length} not 200; ` +
      `shared state ${perProcess.every((p) => p.eventsOk) ? 'fell back once in the outage and came back after the restart in every process' : `NOT one fallback and one recovery (${perProcess.map((p) => `${p.label}: ${p.events}`).join('; ')})`} (${perProcess.reduce((n, p) => n + p.fallbacksWhileUp, 0)} fallbacks while Redis was up), ${perProcess.reduce((n, p) => n + p.unhandledClientErrors, 0)} unhandled client errors; ` +
      `recovered ${secondsOrNever(recoveryMs)} after the restart without restarting the app; ` +
      `${count(acknowledged.size)} operations acknowledged (${heldAfterRestart.size} after a 409 until the lease ended), ${ranTwice.length} keys run twice, ${neverAcknowledged} never acknowledged, ${otherErrors.length} other errors`,
    threshold:
      `only 503 ${storeCodes.join('/')} + Retry-After and no handler run during the outage, every idempotent answer ≤ work + ${(COMMAND_TIMEOUT_MS + HANG_MARGIN_MS) / 1000} s${Number.isFinite(slowFrom) ? ` (+ ${COMMAND_TIMEOUT_MS / 1000} s while slow but answering)` : ''}, ` +
      `shared-breaker p99 ≤ ${forecastBoundMs} ms and always 200, one fallback and one recovery per process, no unhandled client errors, recovery ≤ ${recoveryLimitMs / 1000} s, 0 keys run twice`,
    checks,
    data: {
      outageMs: restartAt - killDone,
      processes: perProcess,
      idempotentRequests: attempts.length,
      operations: keysStarted.length,
      acknowledged: acknowledged.size,
      answeredDuringOutage: duringOutage.length,
      notUnavailableDuringOutage: wrongDuringOutage.map((a) => a.detail),
      inFlightAtKill: caught.map((a) => a.detail),
      handlerRunsWhileDown: runsWhileDown.length,
      slowestIdempotentMs: slowest,
      exposedWaitsMs: exposedWaits,
      sharedBreaker: { calls: forecasts.length, duringOutage: forecastsDuringOutage.length, p99DuringOutageMs: forecastP99, p99BeforeMs: forecastP99Before, boundMs: forecastBoundMs, not200: forecastsNot200.length },
      recoveryMs,
      keysHeldAfterRestart: heldAfterRestart.size,
      keysRunTwice: ranTwice.length,
      neverAcknowledged,
      otherErrors: otherErrors.map((a) => a.detail),
      checks,
    },
  };
}

/**
 * A few requests per process before the measured traffic: a fresh process's first requests (JIT,
 * first connections) take seconds on a loaded machine, which says nothing about an outage.
 */
async function warmUp(processes: readonly RunningProcess[]): Promise<void> {
  await Promise.all(
    processes.map(async ({ app }, p) => {
      for (let i = 0; i < 3; i++) {
        await postOrder(app.url, p, `warm-up-p${p}-${i}`, 0);
        await fetch(`${app.url}/forecast`).then((res) => res.text());
      }
    }),
  );
}

/** `POST /orders` with its key, judged. */
async function postOrder(url: string, processIndex: number, key: string, workMs: number): Promise<Attempt> {
  const sentAt = now();
  const base = { process: processIndex, key, workMs, sentAt };
  try {
    const res = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ workMs }),
      signal: AbortSignal.timeout(REQUEST_ABORT_MS),
    });
    const text = await res.text();
    const answeredAt = now();
    if (res.status >= 200 && res.status < 300) return { ...base, answeredAt, status: res.status, storeUnavailable: false, retryable503: false, detail: `${res.status}` };
    const problem = checkProblem(res.status, res.headers.get('content-type'), text);
    const retryAfter = res.headers.get('retry-after');
    const retryable503 = res.status === 503 && problem.ok && isRetryAfter(retryAfter);
    return {
      ...base,
      answeredAt,
      status: res.status,
      storeUnavailable: retryable503 && problem.ok && problem.code === 'idempotency_store_unavailable',
      ...(problem.ok ? { code: problem.code } : {}),
      retryable503,
      detail: problem.ok ? `${res.status} ${problem.code}${retryAfter ? '' : ' without Retry-After'}` : `${res.status} ${problem.reason}`,
      ...(retryable503 || res.status === 409 ? { retryAfterSeconds: Number(retryAfter) || 1 } : {}),
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    return { ...base, answeredAt: now(), status: 0, storeUnavailable: false, retryable503: false, detail: `network error ${cause}` };
  }
}

/** Every stdout line of `app` from now on, with the time it arrived. */
function timedLines(app: SpawnedApp): TimedLine[] {
  const timed: TimedLine[] = [];
  let buffered = '';
  app.child.stdout!.on('data', (chunk: string) => {
    const at = now();
    const parts = (buffered + chunk).split('\n');
    buffered = parts.pop()!;
    for (const text of parts) timed.push({ at, text });
  });
  return timed;
}

async function killApp(app: SpawnedApp): Promise<void> {
  if (app.child.exitCode !== null || app.child.signalCode !== null) return;
  const exited = new Promise((resolve) => app.child.once('exit', resolve));
  app.child.kill('SIGKILL');
  await exited;
}
