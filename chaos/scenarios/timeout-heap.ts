// Scenario 5: a minute of `@Timeout()` firing under steady load, on Express and Fastify at once
// (each in its own process, run with --expose-gc) → the heap after GC stays flat.
import { startServer, type ServerChild } from '../../bench/shared/children.js';
import { formatCounts } from '../fuzz/judge.js';
import { classifyProblem, get, keepAliveAgent, networkError } from '../shared/http-client.js';
import { count, sleep, type ChaosContext, type Scenario, type Verdict } from '../shared/scenario.js';
import { TIMEOUT_ROUTES } from '../timeouts/timeout-app.js';

/** Load before the first heap sample: JIT, pools, caches and lazily built metadata settle. */
const WARM_UP_MS = 10_000;
/** The measured minute. */
const LOAD_MS = 60_000;
/** Requests in flight per server (closed loop: each connection sends its next request on an answer). */
const CONNECTIONS = 16;
/**
 * Largest heap growth accepted between the two samples, bytes. Each sample is `heapUsed` after
 * four full collections in a warmed-up process, so what it counts is live memory. A minute at 16
 * connections is about 20,000 timed-out requests per server: a leak of 64 bytes per request (one
 * small closure, a Map entry, a listener left on a long-lived signal) adds about 1.2 MiB and
 * fails; a leak of ~340 bytes on every fourth request (+1.7 MiB) was seen to fail. The samples
 * themselves move by a few hundred KiB from run to run (code still being optimised, caches), in
 * either direction, which is why the bound is not tighter.
 */
const MAX_GROWTH_BYTES = 1024 * 1024;
/** After the load, time for the `late` handlers (5 × the timeout) to finish before the last sample. */
const SETTLE_MS = 1_000;

interface Sample {
  readonly platform: string;
  readonly requests: number;
  readonly unexpected: Record<string, number>;
  readonly heapStart: number;
  readonly heapEnd: number;
}

/** Closed-loop load on `server` until `stopAt`; counts answers that are not 503 problem+json `timeout`. */
async function load(server: ServerChild, stopAt: () => boolean): Promise<{ requests: number; unexpected: Record<string, number> }> {
  const agent = keepAliveAgent(CONNECTIONS);
  const unexpected: Record<string, number> = {};
  let requests = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, connection) => {
      for (let i = connection; !stopAt(); i++) {
        const route = TIMEOUT_ROUTES[i % TIMEOUT_ROUTES.length]!;
        let outcome: string;
        try {
          outcome = classifyProblem(await get(`${server.url}${route}`, agent), 503, { codes: ['timeout'] });
        } catch (error) {
          outcome = networkError(error);
        }
        requests++;
        if (outcome !== 'expected') unexpected[`${route}: ${outcome}`] = (unexpected[`${route}: ${outcome}`] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  return { requests, unexpected };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
const signedKib = (bytes: number) => `${bytes >= 0 ? '+' : '−'}${Math.round(Math.abs(bytes) / 1024).toLocaleString('en-US')} KiB`;

export const timeoutHeapScenario: Scenario = {
  id: 'timeout-heap',
  title: `${LOAD_MS / 1000} s of @Timeout() firing under steady load (${CONNECTIONS} connections per server, Express and Fastify)`,
  async run({ log }: ChaosContext): Promise<Verdict> {
    const platforms = ['express', 'fastify'] as const;
    const servers: ServerChild[] = [];
    try {
      for (const platform of platforms) {
        servers.push(await startServer(new URL('../timeouts/server.js', import.meta.url), `timeouts-${platform}`, { BENCH_PLATFORM: platform }, undefined, ['--expose-gc']));
      }
      const warmUpEnd = Date.now() + WARM_UP_MS;
      await Promise.all(servers.map((server) => load(server, () => Date.now() >= warmUpEnd)));
      const heapStart = await Promise.all(servers.map((server) => server.call<number>('heap')));
      log(`warmed up ${WARM_UP_MS / 1000} s; heap after GC: ${platforms.map((p, i) => `${p} ${mib(heapStart[i]!)}`).join(', ')}`);
      const loadEnd = Date.now() + LOAD_MS;
      const loads = await Promise.all(servers.map((server) => load(server, () => Date.now() >= loadEnd)));
      await sleep(SETTLE_MS);
      const heapEnd = await Promise.all(servers.map((server) => server.call<number>('heap')));
      const samples: Sample[] = platforms.map((platform, i) => ({ platform, ...loads[i]!, heapStart: heapStart[i]!, heapEnd: heapEnd[i]! }));
      for (const sample of samples) {
        log(`${sample.platform}: ${count(sample.requests)} requests timed out in ${LOAD_MS / 1000} s; heap after GC ${mib(sample.heapStart)} → ${mib(sample.heapEnd)} (${signedKib(sample.heapEnd - sample.heapStart)}); answers other than 503 timeout: ${formatCounts(sample.unexpected) || 'none'}`);
      }
      const unexpected = samples.map((sample) => Object.values(sample.unexpected).reduce((sum, n) => sum + n, 0));
      return {
        figure:
          samples.map((s) => `${s.platform} ${count(s.requests)} timeouts, heap after GC ${mib(s.heapStart)} → ${mib(s.heapEnd)} (${signedKib(s.heapEnd - s.heapStart)})`).join('; ') +
          `; answers other than 503 problem+json timeout: ${unexpected.join('/')}`,
        threshold: `heap growth ≤ ${signedKib(MAX_GROWTH_BYTES).slice(1)} per server over ${LOAD_MS / 1000} s, every answer 503 problem+json timeout`,
        pass: samples.every((s) => s.heapEnd - s.heapStart <= MAX_GROWTH_BYTES) && unexpected.every((n) => n === 0),
        data: { warmUpMs: WARM_UP_MS, loadMs: LOAD_MS, connections: CONNECTIONS, maxGrowthBytes: MAX_GROWTH_BYTES, samples },
      };
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  },
};
