// Scenario: PostgreSQL hangs under traffic. Every process of the throwaway cluster (postmaster and
// children, by pid) is stopped with SIGSTOP for 8 s, and in a second run for 20 s, then resumed
// with SIGCONT: connections stay open and nothing answers, as on a stalled disk or a paused VM.
// Two app processes, both idempotency modes, node-postgres `query_timeout` 5 s as the README
// advises. The traffic and the checks are in chaos/postgres/hang.ts (shared with `npm test`).
import type { ThrowawayPostgres } from '../../scripts/postgres.mjs';
import { onInterrupt } from '../../bench/shared/children.js';
import { loadPostgresScript } from '../../bench/shared/postgres.js';
import { packageRoot } from '../../bench/shared/report.js';
import { runPostgresFault, type PostgresFault, type PostgresFaultPlan, type PostgresFaultResult } from '../postgres/hang.js';
import { distributionOf, formatDistribution } from '../shared/distribution.js';
import { sleep, type ChaosContext, type Scenario, type Verdict } from '../shared/scenario.js';

/** How long PostgreSQL is stopped in each run: shorter and longer than one query_timeout + lease. */
const HANGS_MS = [8_000, 20_000] as const;
/**
 * The README's settings (query_timeout 5 s); a 5 s lease so that a claim the server applies when it
 * resumes (sent before the timeout) holds its key only briefly; the margin is the documented one
 * (RELIABILITY.md) plus what a loaded 2-core machine adds.
 */
const PLAN: PostgresFaultPlan = { trafficBeforeMs: 3_000, trafficAfterMs: 4_000, drainLimitMs: 15_000, queryTimeoutMs: 5_000, leaseMs: 5_000, marginMs: 1_000, recoveryLimitMs: 5_000 };

/** Stops every process of `server` for `ms` (SIGSTOP, by pid), then resumes them. */
export function sigstopFault(server: ThrowawayPostgres, ms: number): PostgresFault {
  let stopped = 0;
  return {
    describe: () => `SIGSTOP of all ${stopped} processes of the cluster for ${(ms / 1000).toFixed(0)} s`,
    async inject(marks) {
      stopped = server.freeze().length;
      marks.silent();
      await sleep(ms);
    },
    async heal() {
      server.thaw();
    },
  };
}

export const postgresHangScenario: Scenario = {
  id: 'postgres-hang',
  title: `every PostgreSQL process stopped with SIGSTOP for ${HANGS_MS.map((ms) => ms / 1000).join(' s, then ')} s under traffic (transactional and lease mode, query_timeout ${PLAN.queryTimeoutMs / 1000} s, 2 processes)`,
  async run({ log }: ChaosContext): Promise<Verdict> {
    const { startPostgres } = await loadPostgresScript();
    // the cluster that hangs holds the records (and the transactional rows); the lease-mode
    // handlers write to a second one, so that each of their rows is one run of the handler
    const [store, effects] = await Promise.all([startPostgres({ durable: true }), startPostgres()]);
    const forgetInterrupt = onInterrupt(() => {
      store.stop();
      effects.stop();
    });
    try {
      const results: Array<{ hangMs: number; result: PostgresFaultResult }> = [];
      for (const hangMs of HANGS_MS) {
        log(`run with a ${hangMs / 1000} s hang`);
        const result = await runPostgresFault({
          root: packageRoot(),
          label: `hang${hangMs / 1000}s`,
          databases: { storeUrl: store.url, storeJudgeUrl: store.socketUrl, effectsUrl: effects.url, effectsJudgeUrl: effects.socketUrl },
          plan: PLAN,
          fault: sigstopFault(store, hangMs),
          log: (line) => log(`  ${line}`),
        });
        results.push({ hangMs, result });
      }
      const all = distributionOf(results.flatMap(({ result }) => result.waits));
      return {
        figure: `${results.map(({ hangMs, result }) => `${hangMs / 1000} s: ${result.figure}`).join(' | ')} | all waits past the handler's work ${formatDistribution(all)}`,
        threshold: results[0]!.result.threshold,
        pass: results.every(({ result }) => result.checks.every((check) => check.pass)),
        data: { runs: results.map(({ hangMs, result }) => ({ hangMs, ...result.data })), waitsMs: all },
      };
    } finally {
      forgetInterrupt();
      store.stop();
      effects.stop();
    }
  },
};
