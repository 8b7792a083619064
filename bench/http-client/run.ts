// HTTP-client benchmark: the overhead of nest-resilience/http's HttpClient over a raw
// `undici.request` on a loopback call, and its throughput next to got (retry on) and @nestjs/axios,
// all calling the same upstream (its own process) with keep-alive pools, side by side in one run.
//   npm run bench:http-client                 full run (5 interleaved rounds × 3 s per client)
//   npm run bench:http-client -- --quick      quick run (2 rounds × 1 s, about 15 s)
// The callers run here, one client at a time, `--connections` calls in flight.
import { performance } from 'node:perf_hooks';
import { startServer, stopAll, type ServerChild } from '../shared/children.js';
import { readConfig } from '../shared/config.js';
import { interleave, pairedRatio, summarize, type Sample, type Summary } from '../shared/load.js';
import { commandLine, environment, formatMs, formatRatio, formatRps, formatUs, markdownTable, writeResults } from '../shared/report.js';
import { CLIENT_LABELS, CLIENTS, createClient, type BenchClient, type ClientName } from './clients.js';

/**
 * The HttpClient, with its policies, should keep at least raw undici's throughput (issue 23: ≥ 1.0 ×):
 * its own dispatch handler spares it undici.request's body stream and request handler, which pays
 * for what the policies cost.
 */
const GOAL = 1.0;

/** Runs `client` for `seconds` with `inFlight` concurrent callers; CPU is this process's. */
async function drive(client: BenchClient, seconds: number, inFlight: number): Promise<Sample> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        const callStarted = performance.now();
        try {
          await client.call();
          latencies.push(performance.now() - callStarted);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? Number.NaN;
  return {
    rps: latencies.length / elapsed,
    p50: percentile(50),
    p99: percentile(99),
    total: latencies.length,
    non2xx: 0,
    errors,
    statusCodes: {},
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, latencies.length),
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1';
  const config = readConfig(
    argv.filter((arg) => arg !== '--quick'),
    process.env,
    quick ? { duration: 1, rounds: 2 } : { duration: 3, rounds: 5 },
  );
  const warmup = quick ? 0.5 : config.warmup;
  const log = (line: string) => console.error(line);
  log(`http-client: ${CLIENTS.length} clients, warm-up ${warmup} s, ${config.rounds} round(s) × ${config.duration} s, ${config.connections} calls in flight${quick ? ' (quick)' : ''}`);

  const servers: ServerChild[] = [];
  const clients = new Map<ClientName, BenchClient>();
  try {
    const upstream = await startServer(new URL('./upstream.js', import.meta.url), 'http-client-upstream', {});
    servers.push(upstream);
    for (const name of CLIENTS) {
      const client = createClient(name, upstream.url);
      clients.set(name, client);
      const body = (await client.call()) as { hello?: string };
      if (body?.hello !== 'world') throw new Error(`${name} did not get the upstream's body: ${JSON.stringify(body)}`);
    }
    for (const name of CLIENTS) await drive(clients.get(name)!, warmup, config.connections);
    log('warm-up done');

    const samples = await interleave([...CLIENTS], config.rounds, async (name, round) => {
      const sample = await drive(clients.get(name)!, config.duration, config.connections);
      log(`  round ${round + 1}/${config.rounds} ${name.padEnd(13)} ${formatRps(sample.rps).padStart(7)} calls/s  p99 ${formatMs(sample.p99)}  caller cpu ${formatUs(sample.cpuUsPerRequest)}/call${sample.errors ? `  errors ${sample.errors}` : ''}`);
      return sample;
    });
    const summaries = new Map<ClientName, Summary>(CLIENTS.map((name) => [name, summarize(samples.get(name)!)]));
    const raw = summaries.get('undici')!;
    const results: Record<string, unknown> = {};
    const rows = CLIENTS.map((name) => {
      const summary = summaries.get(name)!;
      const ratio = pairedRatio(summary, raw, (sample) => sample.rps);
      const cpuRatio = pairedRatio(summary, raw, (sample) => sample.cpuUsPerRequest);
      results[name] = {
        medianCallsPerSecond: summary.medianRps,
        medianP50Ms: summary.medianP50,
        medianP99Ms: summary.medianP99,
        throughputRatioToUndici: ratio,
        medianCallerCpuUsPerCall: summary.medianCpuUs,
        cpuRatioToUndici: cpuRatio,
        errors: summary.errors,
        rounds: summary.rounds,
      };
      return [CLIENT_LABELS[name], formatRps(summary.medianRps), formatMs(summary.medianP50), formatMs(summary.medianP99), formatRatio(ratio), formatUs(summary.medianCpuUs), formatRatio(cpuRatio), String(summary.errors)];
    });
    const { throughputRatioToUndici: clientRatio, cpuRatioToUndici: clientCpuRatio } = results['http-client'] as { throughputRatioToUndici: number; cpuRatioToUndici: number };
    const met = clientRatio >= GOAL;
    const header = `## HTTP client: one loopback GET with a JSON body (${config.rounds} interleaved round(s) × ${config.duration} s, ${config.connections} calls in flight, warm-up ${warmup} s${quick ? ', quick run' : ''})`;
    console.log(
      `\n${header}\n\n${markdownTable(['client', 'calls/s (median)', 'p50', 'p99', 'vs undici (paired)', 'caller CPU / call', 'CPU vs undici', 'errors'], rows)}\n`,
    );
    console.log(met ? `Goal met: HttpClient keeps ${formatRatio(clientRatio)} of raw undici's throughput (goal ≥ ${GOAL}).` : `GOAL MISSED: HttpClient keeps ${formatRatio(clientRatio)} of raw undici's throughput (goal ≥ ${GOAL}).`);
    // the callers' CPU per call is what the throughput follows here (the upstream has a core of its
    // own): shown beside it, it tells a client that costs more from a run the machine's load skewed
    console.log(`Caller CPU per call: HttpClient ${formatRatio(clientCpuRatio)} × raw undici's (paired; ≤ 1 matches the goal; load-independent count: node build/bench/http-client/instructions.js).`);
    const file = writeResults(quick ? 'http-client.quick.json' : 'http-client.json', {
      benchmark: 'http-client',
      command: commandLine('bench:http-client'),
      config: { ...config, warmup, quick },
      goal: { throughputRatioToUndici: GOAL, met, cpuRatioToUndici: clientCpuRatio },
      environment: environment(),
      results,
    });
    console.log(`Results written to ${file}`);
  } finally {
    await Promise.all([...clients.values()].map((client) => client.close().catch(() => undefined)));
    await stopAll(servers);
  }
}


main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
