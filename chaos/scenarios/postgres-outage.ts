// Scenario 2: PostgreSQL killed (`pg_ctl stop -m immediate`) under traffic for several seconds,
// then started again, under four app processes (the multi-instance fixture's transactional route,
// Express and Fastify, slow and fast handlers). The server is always our own (durable: fsync and synchronous_commit on),
// even with DATABASE_URL set, since the scenario stops it.
//
// Clients behave as the README asks: each sends one operation (a fresh Idempotency-Key) and
// repeats it, honouring Retry-After, until it is acknowledged (2xx), then starts the next.
import { onInterrupt } from '../../bench/shared/children.js';
import { loadPostgresScript } from '../../bench/shared/postgres.js';
import { packageRoot } from '../../bench/shared/report.js';
import { isRunning, killInstance, openFixtureDatabase, postWithKey, startInstance, type Instance } from '../../test/fixtures/idempotency/multi-instance.launcher.js';
import { checkProblem, isRetryAfter } from '../shared/problem.js';
import { readReportRows } from '../shared/report-rows.js';
import { count, sleep, type ChaosContext, type Scenario, type Verdict } from '../shared/scenario.js';

/** Clients per app process, each with one operation at a time. */
const CLIENTS_PER_PROCESS = 8;
/** Connections per process: one per concurrent transactional request, plus one (see exactly-once). */
const POOL_SIZE = CLIENTS_PER_PROCESS + 1;
/**
 * How long the handlers work inside their transaction after writing their row. The slow processes'
 * handlers outlast `pg_ctl stop -m immediate`, so requests inside them at the kill are still there
 * when PostgreSQL dies; the fast processes make many writes, for the lost-write check.
 */
const PROCESSES = [
  { platform: 'express', handlerDelayMs: 500 },
  { platform: 'fastify', handlerDelayMs: 500 },
  { platform: 'express', handlerDelayMs: 20 },
  { platform: 'fastify', handlerDelayMs: 20 },
] as const;
const TRAFFIC_BEFORE_MS = 3_000;
/** From the end of `pg_ctl stop -m immediate` to the restart. */
const OUTAGE_MS = 5_000;
const TRAFFIC_AFTER_MS = 4_000;
/** After new operations stop, how long the clients may take to get their last ones acknowledged. */
const DRAIN_LIMIT_MS = 20_000;
/** The app must acknowledge a write within this long after PostgreSQL is back, without a restart. */
const RECOVERY_LIMIT_MS = 10_000;

/** One HTTP exchange. */
interface Attempt {
  readonly key: string;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** HTTP status, or 0 for a network error. */
  readonly status: number;
  /** 503 problem+json with Retry-After. */
  readonly unavailable: boolean;
  readonly detail: string;
  /** The row id a 2xx reported. */
  readonly rowId?: number;
  /** Seconds the answer asked to wait before retrying. */
  readonly retryAfterSeconds?: number;
  /** The handler had started (its row written, not committed) when PostgreSQL was killed. */
  insideHandlerAtCrash?: boolean;
}

const now = () => performance.now();

export const postgresOutageScenario: Scenario = {
  id: 'postgres-outage',
  title: `PostgreSQL killed with pg_ctl stop -m immediate for ${OUTAGE_MS / 1000} s under traffic, then restarted (transactional route, ${PROCESSES.length} processes)`,
  async run({ log }: ChaosContext): Promise<Verdict> {
    const { startPostgres } = await loadPostgresScript();
    const server = await startPostgres({ durable: true });
    const instances: Instance[] = [];
    // Ctrl-C: no fixture process or database server left behind.
    const forgetInterrupt = onInterrupt(async () => {
      await Promise.all(instances.map(killInstance));
      server.stop();
    });
    try {
      await (await openFixtureDatabase(server.url)).destroy();
      const root = packageRoot();
      instances.push(
        ...(await Promise.all(
          PROCESSES.map(({ platform, handlerDelayMs }, i) =>
            startInstance({ root, name: `o${i}`, databaseUrl: server.url, platform, leaseMs: 10_000, handlerDelayMs, poolSize: POOL_SIZE }),
          ),
        )),
      );
      const pids = instances.map((instance) => instance.child.pid);
      const entered = (key: string) => instances.reduce((sum, instance) => sum + instance.lines.filter((line) => line === `ENTERED /reports/tx ${key}`).length, 0);

      const attempts: Attempt[] = [];
      const inFlight = new Map<string, { sentAt: number; enteredBefore: number }>();
      /** `key@sentAt` of the requests whose handler had started when PostgreSQL was killed. */
      const insideAtCrash = new Set<string>();
      const acknowledged = new Map<string, number>();
      let nextKey = 0;
      let acceptNew = true;
      let stopped = false;
      const client = async (instance: Instance) => {
        while (acceptNew && !stopped) {
          const key = `outage-${nextKey++}`;
          while (!stopped) {
            const sentAt = now();
            inFlight.set(key, { sentAt, enteredBefore: entered(key) });
            let attempt: Attempt;
            try {
              const answer = await postWithKey(instance, '/reports/tx', key, { title: key });
              const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
              const problem = checkProblem(answer.status, answer.headers.get('content-type'), text);
              const unavailable = answer.status === 503 && problem.ok && isRetryAfter(answer.headers.get('retry-after'));
              const ok = answer.status >= 200 && answer.status < 300;
              attempt = {
                key,
                sentAt,
                answeredAt: now(),
                status: answer.status,
                unavailable,
                detail: ok ? 'ok' : problem.ok ? `${answer.status} ${problem.code}${unavailable || answer.status !== 503 ? '' : ' without Retry-After'}` : `${answer.status} ${problem.reason}`,
                ...(ok ? { rowId: Number((answer.body as { id: unknown }).id) } : {}),
                ...(unavailable || answer.status === 409 ? { retryAfterSeconds: Number(answer.headers.get('retry-after')) || 1 } : {}),
              };
            } catch (error) {
              attempt = { key, sentAt, answeredAt: now(), status: 0, unavailable: false, detail: `network error ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message}` };
            }
            inFlight.delete(key);
            attempts.push(attempt);
            if (attempt.rowId !== undefined) {
              acknowledged.set(key, attempt.rowId);
              break;
            }
            await sleep((attempt.retryAfterSeconds ?? 1) * 1_000);
          }
        }
      };
      const clients = instances.flatMap((instance) => Array.from({ length: CLIENTS_PER_PROCESS }, () => client(instance)));

      await sleep(TRAFFIC_BEFORE_MS);
      const crashAt = now();
      const inFlightAtCrash = inFlight.size;
      for (const [key, flight] of inFlight) {
        if (entered(key) > flight.enteredBefore) insideAtCrash.add(`${key}@${flight.sentAt}`);
      }
      await server.crash();
      const crashDone = now();
      log(`PostgreSQL killed (pg_ctl stop -m immediate took ${(crashDone - crashAt).toFixed(0)} ms); ${inFlightAtCrash} requests in flight, ${insideAtCrash.size} inside their handler`);
      await sleep(OUTAGE_MS);
      const restartAt = now();
      await server.restart();
      const restartDone = now();
      log(`PostgreSQL restarted after ${((restartAt - crashDone) / 1000).toFixed(1)} s down (pg_ctl start took ${(restartDone - restartAt).toFixed(0)} ms)`);
      await sleep(TRAFFIC_AFTER_MS);
      acceptNew = false;
      const drained = await Promise.race([Promise.all(clients).then(() => true), sleep(DRAIN_LIMIT_MS).then(() => false)]);
      stopped = true;
      await Promise.all(clients);

      for (const attempt of attempts) if (insideAtCrash.has(`${attempt.key}@${attempt.sentAt}`)) attempt.insideHandlerAtCrash = true;
      // During the outage: what the server answered to requests it received after the kill.
      const duringOutage = attempts.filter((a) => a.sentAt >= crashAt && a.answeredAt <= restartDone);
      const wrongDuringOutage = duringOutage.filter((a) => !a.unavailable);
      // In flight at the kill: 503 problem+json with Retry-After, or a 2xx for a commit just before it.
      const caught = attempts.filter((a) => a.sentAt < crashAt && a.answeredAt >= crashAt);
      const wrongCaught = caught.filter((a) => !a.unavailable && a.rowId === undefined);
      const inside = attempts.filter((a) => a.insideHandlerAtCrash);
      // The whole run: a 5xx is always 503 problem+json with Retry-After; no network errors.
      const wrongAnywhere = attempts.filter((a) => (a.status >= 500 && !a.unavailable) || a.status === 0 || (a.status >= 400 && a.status < 500 && a.status !== 409));
      const firstAfter = attempts.filter((a) => a.rowId !== undefined && a.sentAt >= restartDone).sort((a, b) => a.answeredAt - b.answeredAt)[0];
      const recoveryMs = firstAfter ? firstAfter.answeredAt - restartDone : Number.POSITIVE_INFINITY;
      const sameProcesses = instances.every((instance, i) => isRunning(instance) && instance.child.pid === pids[i]);
      const keysStarted = nextKey;
      const unresolved = keysStarted - acknowledged.size;

      const rows = await readReportRows(server.url);
      const lost = [...acknowledged].filter(([key, id]) => rows.byId.get(id) !== key);
      const duplicates = [...rows.perKey].filter(([, n]) => n > 1);
      const unacknowledgedEffects = [...rows.perKey.keys()].filter((key) => !acknowledged.has(key));

      log(`${count(attempts.length)} requests for ${count(keysStarted)} operations; ${count(duringOutage.length)} answered during the outage (${wrongDuringOutage.length} not 503 + Retry-After problem+json), ${caught.length} in flight at the kill (${inside.length} inside handlers: ${inside.filter((a) => a.unavailable).length} answered 503, ${inside.filter((a) => a.rowId !== undefined).length} committed before the kill)`);
      log(`first acknowledged write ${Number.isFinite(recoveryMs) ? `${(recoveryMs / 1000).toFixed(2)} s` : 'never'} after the restart; app processes ${sameProcesses ? 'never restarted' : 'EXITED'}; drained ${drained ? 'in time' : `NOT within ${DRAIN_LIMIT_MS / 1000} s`}`);
      for (const attempt of [...wrongDuringOutage, ...wrongCaught, ...wrongAnywhere].slice(0, 8)) log(`VIOLATION ${attempt.key}: ${attempt.detail} (sent ${((attempt.sentAt - crashAt) / 1000).toFixed(2)} s after the kill)`);
      for (const [key, id] of lost.slice(0, 8)) log(`LOST ${key}: acknowledged row ${id} is not in the database`);
      for (const [key, n] of duplicates.slice(0, 8)) log(`DUPLICATE ${key}: ${n} rows`);

      const pass =
        wrongDuringOutage.length === 0 &&
        wrongCaught.length === 0 &&
        wrongAnywhere.length === 0 &&
        duringOutage.length > 0 &&
        inside.some((a) => a.unavailable) &&
        recoveryMs <= RECOVERY_LIMIT_MS &&
        sameProcesses &&
        unresolved === 0 &&
        lost.length === 0 &&
        duplicates.length === 0;
      return {
        figure:
          `outage ${((restartAt - crashDone) / 1000).toFixed(1)} s: ${count(duringOutage.length)} answers during it, ${wrongDuringOutage.length} not 503 + Retry-After problem+json; ` +
          `${inside.length} requests inside handlers at the kill: ${inside.filter((a) => a.unavailable).length} × 503, ${inside.filter((a) => a.rowId !== undefined).length} committed just before (2xx), ${inside.filter((a) => !a.unavailable && a.rowId === undefined).length} other; ` +
          `recovered ${Number.isFinite(recoveryMs) ? `${(recoveryMs / 1000).toFixed(2)} s` : 'never'} after the restart without restarting the app; ` +
          `${lost.length} lost of ${count(acknowledged.size)} acknowledged writes, ${duplicates.length} duplicates, ${unresolved} operations never acknowledged, ${wrongAnywhere.length} other errors`,
        threshold: `only 503 + Retry-After problem+json during the outage (in-flight requests included), recovery ≤ ${RECOVERY_LIMIT_MS / 1000} s without restart, 0 lost acknowledged writes, 0 duplicates`,
        pass,
        data: {
          outageMs: restartAt - crashDone,
          requests: attempts.length,
          operations: keysStarted,
          acknowledged: acknowledged.size,
          answeredDuringOutage: duringOutage.length,
          notUnavailableDuringOutage: wrongDuringOutage.map((a) => a.detail),
          insideHandlersAtKill: inside.map((a) => a.detail),
          recoveryMs,
          lost: lost.length,
          duplicates: duplicates.length,
          unacknowledgedEffects: unacknowledgedEffects.length,
        },
      };
    } finally {
      forgetInterrupt();
      await Promise.all(instances.map(killInstance));
      server.stop();
    }
  },
};
