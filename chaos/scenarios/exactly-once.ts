// Scenario 1: several app processes (the multi-instance fixture, Express and Fastify) on one
// PostgreSQL, many requests racing over few keys → one effect per key and no 5xx. Half the keys go
// to the lease-mode route (`POST /reports`), half to the transactional one (`POST /reports/tx`).
import type { DataSource } from 'typeorm';
import { onInterrupt } from '../../bench/shared/children.js';
import { obtainPostgres } from '../../bench/shared/postgres.js';
import { packageRoot } from '../../bench/shared/report.js';
import { isRunning, killInstance, openFixtureDatabase, postWithKey, startInstance, type Instance } from '../../test/fixtures/idempotency/multi-instance.launcher.js';
import { formatCounts } from '../fuzz/judge.js';
import { count, type ChaosContext, type Scenario, type Verdict } from '../shared/scenario.js';

const PROCESSES = 4;
const REQUESTS = 1_000;
const KEYS = 25;
/** Requests each process has in flight at once (each client connection waits for its answer). */
const CONCURRENCY_PER_PROCESS = 32;
/**
 * Connections per process: one per concurrent request, plus one. A transactional request holds one
 * connection for its whole transaction; a lease-mode request holds one for one statement at a time
 * (claim, the handler's own write, complete), never two at once. So no request ever waits for the
 * pool; the extra connection is for lease heartbeats and the purger, which share it. With a
 * smaller pool requests queue for a connection, and one that waits longer than the checkout
 * timeout (TypeORM's connectTimeoutMS) is answered 503 although the database is healthy.
 * The pools start cold on purpose: all 4 × 33 connections open at the burst's start, which on a
 * busy host takes PostgreSQL longer than connectTimeoutMS for some of them; the store tries those
 * again on new connections (TypeOrmIdempotencyStore's connectRetryWindow).
 */
const POOL_SIZE = CONCURRENCY_PER_PROCESS + 1;
/** Longer than the whole burst: no lease expires, so no takeover can run a key twice. */
const LEASE_MS = 30_000;

export const exactlyOnceScenario: Scenario = {
  id: 'exactly-once',
  title: `${PROCESSES} processes on one PostgreSQL, ${count(REQUESTS)} requests over ${KEYS} keys (lease and transactional mode)`,
  async run({ log }: ChaosContext): Promise<Verdict> {
    const database = await obtainPostgres(process.env, { durable: true });
    if ('skipped' in database) throw new Error(`PostgreSQL is needed: ${database.skipped}`);
    log(`PostgreSQL: ${database.source}`);
    const instances: Instance[] = [];
    let dataSource: DataSource | undefined;
    // Ctrl-C: no fixture process or database left behind.
    const forgetInterrupt = onInterrupt(async () => {
      await Promise.all(instances.map(killInstance));
      await database.close();
    });
    try {
      dataSource = await openFixtureDatabase(database.url);
      const root = packageRoot();
      instances.push(
        ...(await Promise.all(
          Array.from({ length: PROCESSES }, (_, i) =>
            startInstance({ root, name: `p${i}`, databaseUrl: database.url, platform: i % 2 === 0 ? 'express' : 'fastify', leaseMs: LEASE_MS, poolSize: POOL_SIZE }),
          ),
        )),
      );
      const keys = Array.from({ length: KEYS }, (_, i) => `exactly-once-${i}`);
      const statuses: Record<string, number> = {};
      const started = Date.now();
      // Request i goes to process i % PROCESSES with key i % KEYS (even keys in lease mode, odd ones
      // transactional); each process has its own clients.
      await Promise.all(
        instances.flatMap((instance, p) => {
          let next = p;
          const client = async () => {
            for (let i = next; i < REQUESTS; i = next) {
              next += PROCESSES;
              const key = keys[i % KEYS]!;
              const route = i % KEYS % 2 === 0 ? '/reports' : '/reports/tx';
              let status: string;
              try {
                const answer = await postWithKey(instance, route, key, { title: `title of ${key}` });
                // a 5xx names its problem code, so a failed run says which guarantee gave way
                const code = answer.status >= 500 ? (answer.body as { code?: string } | undefined)?.code : undefined;
                status = code ? `${answer.status} ${code}` : String(answer.status);
              } catch (error) {
                status = `network error ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message}`;
              }
              statuses[status] = (statuses[status] ?? 0) + 1;
            }
          };
          return Array.from({ length: CONCURRENCY_PER_PROCESS }, client);
        }),
      );
      const seconds = (Date.now() - started) / 1000;
      const rows = (await dataSource.query('SELECT request_key AS key, COUNT(*)::int AS n, array_agg(instance) AS instances FROM multi_instance_reports GROUP BY request_key')) as Array<{ key: string; n: number; instances: string[] }>;
      const effects = rows.reduce((sum, row) => sum + row.n, 0);
      const keysWithEffect = rows.length;
      const duplicated = rows.filter((row) => row.n > 1).length;
      const executedBy = new Set(rows.flatMap((row) => row.instances));
      const serverErrors = Object.entries(statuses).filter(([status]) => !/^[1-4]\d\d$/.test(status)).reduce((sum, [, n]) => sum + n, 0);
      const stillRunning = instances.filter(isRunning).length;
      log(`${count(REQUESTS)} requests in ${seconds.toFixed(1)} s; answers ${formatCounts(statuses)}; handlers ran in ${executedBy.size} of ${PROCESSES} processes`);
      const pass = effects === KEYS && keysWithEffect === KEYS && duplicated === 0 && serverErrors === 0 && stillRunning === PROCESSES;
      return {
        figure:
          `${PROCESSES} processes (pool ${POOL_SIZE} each for ${CONCURRENCY_PER_PROCESS} concurrent requests each), ${count(REQUESTS)} requests over ${KEYS} keys: ` +
          `${effects} effects for ${KEYS} keys (${duplicated} keys twice), 5xx or network errors ${serverErrors}; answers ${formatCounts(statuses)}`,
        threshold: `≥ 4 processes, ≥ 800 requests, ≥ 20 keys; effects = keys, 0 5xx`,
        pass: pass && PROCESSES >= 4 && REQUESTS >= 800 && KEYS >= 20,
        data: { processes: PROCESSES, requests: REQUESTS, keys: KEYS, poolSize: POOL_SIZE, concurrencyPerProcess: CONCURRENCY_PER_PROCESS, statuses, effects, duplicated, executedBy: [...executedBy] },
      };
    } finally {
      forgetInterrupt();
      await Promise.all(instances.map(killInstance));
      await dataSource?.destroy().catch(() => undefined);
      await database.close();
    }
  },
};
