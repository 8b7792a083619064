// Scenario 4: a dependency failing 100 % with 503 behind a `@Retryable()` route, at a fixed offered
// rate for two budget windows, on Express then on Fastify (each in its own process, with its own
// dependency). No warm-up: warm-up calls would sit in the budget's window and let the
// measured run retry more than its own traffic allows.
import { DEFAULT_RETRY_BUDGET } from 'nest-resilience/core';
import { startServer, type ServerChild } from '../../bench/shared/children.js';
import { amplification, describeAmplification, offerFixedRate, startFailingUpstream, type FailingUpstream, type OfferedLoad } from '../budget/amplification.js';
import { formatCounts } from '../fuzz/judge.js';
import { count, type ChaosContext, type Scenario, type Verdict } from '../shared/scenario.js';

/** Offered load per server, requests per second (the rate of the probe). */
const RATE = 200;
/**
 * Two windows of the default budget (the bound must hold in steady state, not only in the first
 * window), less the half second in which the last requests' retries (at most 100 + 200 ms of
 * back-off) still reach the dependency: the whole run then fits in two windows.
 */
const DURATION_MS = 2 * DEFAULT_RETRY_BUDGET.window - 500;

export const retryBudgetScenario: Scenario = {
  id: 'retry-budget',
  title: `dependency failing 100 % with 503 at ${RATE} req/s for ${DURATION_MS / 1000} s through @Retryable() (Express and Fastify)`,
  async run({ log }: ChaosContext): Promise<Verdict> {
    const platforms = ['express', 'fastify'] as const;
    const upstreams: FailingUpstream[] = [];
    const servers: ServerChild[] = [];
    try {
      for (const platform of platforms) {
        const upstream = await startFailingUpstream();
        upstreams.push(upstream);
        servers.push(await startServer(new URL('../budget/server.js', import.meta.url), `budget-${platform}`, { BENCH_PLATFORM: platform, CHAOS_UPSTREAM_URL: upstream.url }));
      }
      // One after the other: the machine has two cores, and a lagging load generator stretches the run.
      const loads: OfferedLoad[] = [];
      for (const server of servers) loads.push(await offerFixedRate(`${server.url}/budget`, RATE, DURATION_MS));
      const figures = platforms.map((platform, i) => {
        const figure = amplification(loads[i]!.requests, upstreams[i]!.calls(), upstreams[i]!.spanMs());
        log(`${platform}: ${describeAmplification(figure)}; requests sent over ${(loads[i]!.sendMs / 1000).toFixed(1)} s`);
        log(`${platform}: answers 503 problem+json with Retry-After ${count(loads[i]!.expected)}, other ${formatCounts(loads[i]!.unexpected) || 'none'}`);
        return figure;
      });
      const unexpected = loads.map((load) => Object.values(load.unexpected).reduce((sum, n) => sum + n, 0));
      return {
        figure:
          platforms.map((platform, i) => `${platform} ${describeAmplification(figures[i]!)}`).join('; ') +
          `; answers not 503 problem+json with Retry-After: ${unexpected.join('/')}`,
        threshold: `calls ÷ requests ≤ ${(1 + DEFAULT_RETRY_BUDGET.ratio).toFixed(1)} + floor (minRetriesPerSecond × window) × ⌈T ÷ window⌉ ÷ requests, every answer 503 problem+json with Retry-After`,
        pass: figures.every((figure) => figure.withinBound) && unexpected.every((n) => n === 0),
        data: { rate: RATE, durationMs: DURATION_MS, figures: Object.fromEntries(platforms.map((p, i) => [p, { ...figures[i], answers: loads[i] }])) },
      };
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      await Promise.all(upstreams.map((upstream) => upstream.close()));
    }
  },
};
