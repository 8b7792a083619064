// Overhead of @Timeout / @Retryable on a trivial GET route, Express and Fastify, side by side.
//   npm run bench:overhead       full run (2 processes per variant, 8 interleaved rounds × 2 s each)
//   BENCH_DURATION=2 BENCH_ROUNDS=1 BENCH_PROCESSES=1 npm run bench:overhead   quick run (~1 min)
// Every variant is its own Nest app in its own process (loopback only); autocannon runs here.
import { join } from 'node:path';
import { profiled, startServer, stopAll, type ServerChild } from '../shared/children.js';
import { readConfig } from '../shared/config.js';
import { interleave, measure, pairedRatio, summarize, type Sample, type Summary } from '../shared/load.js';
import {
  commandLine,
  environment,
  formatMs,
  formatRatio,
  formatRps,
  formatUs,
  markdownTable,
  resultsDir,
  writeResults,
} from '../shared/report.js';
import type { Platform } from '../shared/server-harness.js';
import { DECORATED_VARIANTS, OVERHEAD_VARIANTS, VARIANT_LABELS, baselineOf, checkRoute, type OverheadVariant } from './variants.js';

/** Decorated routes must keep this share of the bare route's throughput. */
const GOAL = 0.95;

interface Target {
  readonly platform: Platform;
  readonly variant: OverheadVariant;
  /** Which of the variant's server processes this is (0-based). */
  readonly index: number;
  readonly server: ServerChild;
}

async function main(): Promise<void> {
  // more, shorter rounds than the default: the medians of a trivial route need them on a shared
  // machine; two processes per variant, because identical code differs by a few % between processes
  const config = readConfig(undefined, undefined, { duration: 2, rounds: 8, processes: 2 });
  const log = (line: string) => console.error(line);
  log(`overhead: ${config.platforms.join(' + ')}, ${OVERHEAD_VARIANTS.length} variants × ${config.processes} process(es), warm-up ${config.warmup} s, ${config.rounds} round(s) × ${config.duration} s, ${config.connections} connections`);

  const servers: ServerChild[] = [];
  try {
    const processIndexes = Array.from({ length: config.processes }, (_, index) => index);
    const targets = await Promise.all(
      config.platforms.flatMap((platform) =>
        processIndexes.flatMap((index) =>
          OVERHEAD_VARIANTS.map(async (variant): Promise<Target> => {
            const server = await startServer(new URL('./server.js', import.meta.url), `overhead-${platform}-${variant}-${index}`, {
              BENCH_PLATFORM: platform,
              BENCH_VARIANT: variant,
            });
            servers.push(server);
            return { platform, variant, index, server };
          }),
        ),
      ),
    );
    for (const target of targets) await checkRoute(target.server);

    const spec = { path: '/hello' };
    const cpuOf = (target: Target) => () => target.server.call<number>('cpu');
    for (const target of targets) await measure(target.server.url, spec, config.warmup, config.connections);
    log('warm-up done');

    const profileDir = config.cpuProfile ? join(resultsDir(), 'profiles') : undefined;
    const samples = await interleave(targets, config.rounds, async (target, round) => {
      const sample = await profiled(target.server, round === 0 ? profileDir : undefined, () =>
        measure(target.server.url, spec, config.duration, config.connections, cpuOf(target)),
      );
      log(`  round ${round + 1}/${config.rounds} ${target.platform.padEnd(7)} ${`${target.variant} #${target.index}`.padEnd(13)} ${formatRps(sample.rps).padStart(7)} req/s  p99 ${formatMs(sample.p99)}  cpu ${formatUs(sample.cpuUsPerRequest)}/req${sample.non2xx || sample.errors ? `  non-2xx ${sample.non2xx} errors ${sample.errors}` : ''}`);
      return sample;
    });
    /** Every sample of one variant, process by process in order (so index i pairs across variants). */
    const samplesOf = (platform: Platform, variant: OverheadVariant, index?: number): Sample[] =>
      targets
        .filter((t) => t.platform === platform && t.variant === variant && (index === undefined || t.index === index))
        .sort((a, b) => a.index - b.index)
        .flatMap((t) => samples.get(t)!);

    const results: Record<string, Record<string, unknown>> = {};
    const tables: string[] = [];
    const misses: string[] = [];
    const controls: string[] = [];
    for (const platform of config.platforms) {
      const summaryOf = (variant: OverheadVariant): Summary => summarize(samplesOf(platform, variant));
      const bare = summaryOf('bare');
      const noLibrary = summaryOf('no-library');
      results[platform] = {};
      // the method's own noise: the same bare route in two processes, paired like the variants
      if (config.processes > 1) {
        const control = pairedRatio(summarize(samplesOf(platform, 'bare', 1)), summarize(samplesOf(platform, 'bare', 0)), (sample) => sample.rps);
        results[platform].control = { secondBareProcessRatioToFirst: control };
        controls.push(`${platform}: the bare route's second process ÷ its first = ${formatRatio(control)}`);
      }
      const rows = OVERHEAD_VARIANTS.map((variant) => {
        const summary = summaryOf(variant);
        // Ratios pair each sample with the other variant's sample of the same round and process
        // index (measured seconds apart), then take the median: drift between rounds cancels out.
        const baseline = baselineOf(variant) === 'bare' ? bare : summaryOf(baselineOf(variant));
        const ratio = pairedRatio(summary, baseline, (sample) => sample.rps);
        const ratioToNoLibrary = pairedRatio(summary, noLibrary, (sample) => sample.rps);
        // bare CPU per request / this variant's: the share of bare throughput a CPU-bound server keeps
        const cpuRatio = pairedRatio(baseline, summary, (sample) => sample.cpuUsPerRequest);
        const goal = DECORATED_VARIANTS.includes(variant) ? (ratio >= GOAL ? 'yes' : 'NO') : '';
        if (goal === 'NO') misses.push(`${platform} ${variant}: ${formatRatio(ratio)} of bare (goal ${GOAL})`);
        results[platform][variant] = {
          medianRps: summary.medianRps,
          medianP50Ms: summary.medianP50,
          medianP99Ms: summary.medianP99,
          ratioToBare: ratio,
          ratioToNoLibrary,
          medianCpuUsPerRequest: summary.medianCpuUs,
          cpuRatioToBare: cpuRatio,
          non2xx: summary.non2xx,
          errors: summary.errors,
          rounds: summary.rounds,
        };
        return [
          VARIANT_LABELS[variant],
          formatRps(summary.medianRps),
          formatMs(summary.medianP99),
          formatRatio(ratio),
          formatRatio(ratioToNoLibrary),
          goal,
          formatUs(summary.medianCpuUs),
          formatRatio(cpuRatio),
          String(summary.non2xx + summary.errors),
        ];
      });
      tables.push(
        `### ${platform}\n\n${markdownTable(
          ['route', 'req/s (median)', 'p99 (median)', 'vs bare (paired)', 'vs no library', `≥ ${GOAL}`, 'server CPU / req', 'CPU: bare ÷ this', 'non-2xx + errors'],
          rows,
        )}`,
      );
    }

    const header = `## Overhead: one trivial GET route (${config.processes} process(es) per variant, ${config.rounds} interleaved round(s) × ${config.duration} s each, ${config.connections} connections, warm-up ${config.warmup} s)`;
    console.log(`\n${header}\n\n${tables.join('\n\n')}\n`);
    if (controls.length) console.log(`Control (1.00 = no noise; the method cannot resolve differences smaller than its distance from 1): ${controls.join('; ')}\n`);
    console.log(misses.length ? `GOAL MISSED: ${misses.join('; ')}` : `Goal met: every decorated route keeps ≥ ${GOAL} of the bare route's throughput.`);
    const file = writeResults('overhead.json', {
      benchmark: 'overhead',
      command: commandLine('bench:overhead'),
      config,
      goal: { ratioToBare: GOAL, met: misses.length === 0, misses },
      environment: environment(),
      results,
    });
    console.log(`Results written to ${file}`);
  } finally {
    await stopAll(servers);
  }
}


main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
