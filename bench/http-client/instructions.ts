// CPU instructions per call of the caller's side of one loopback GET with a JSON body: raw
// `undici.request` against `HttpClient` (defaults: timeouts, 3 attempts, breaker), the same calls
// bench:http-client times, counted by valgrind's callgrind so the figure does not depend on what
// else the machine is doing (bench:http-client's throughput does).
//   npm run bench:http-client:instructions      (~5–10 min on a busy 2-core machine)
//   BENCH_WARMUP_CALLS=6000 BENCH_CALLS=1500 npm run bench:http-client:instructions
// The upstream runs in its own process, outside valgrind; the clients run in one process under
// callgrind: warm-up calls with counting off, then counted windows, the clients taking turns (every
// thread of the process counts: JIT and garbage collector included); the median window is the figure.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { callgrindArgs, startServer, stopAll, type ServerChild } from '../shared/children.js';
import { countFromEnv } from '../shared/config.js';
import { median } from '../shared/load.js';
import { formatRatio, markdownTable } from '../shared/report.js';
import { CLIENT_LABELS, createClient } from './clients.js';

/** The counted clients: raw undici is what the other is compared with. */
const VARIANTS = ['undici', 'http-client'] as const;
type InstructionVariant = (typeof VARIANTS)[number];

const DEFAULT_WARMUP_CALLS = 10_000;
/** Calls per counted window. */
const DEFAULT_CALLS = 2_000;
const DEFAULT_WINDOWS = 5;
/** Calls in flight, as in bench:http-client's default (`--connections`) order of magnitude. */
const IN_FLIGHT = 8;
/** The client's goal: raw undici's instructions per call ÷ the client's ≥ this. */
const GOAL = 1.0;

/** V8 compiles on the main thread, so the counted windows hold the same JIT work run after run. */
const NODE_FLAGS = ['--no-concurrent-recompilation', '--no-concurrent-osr', '--no-concurrent-sparkplug'];

/**
 * The child: makes every client, warms each up, then has callgrind count `windows` windows of
 * `calls` calls per client, the clients taking turns window by window (one process: the same heap,
 * JIT and event loop for both; the turns spread what one client's garbage costs the other).
 */
async function measure(variants: readonly InstructionVariant[], upstreamUrl: string, warmupCalls: number, calls: number, windows: number): Promise<void> {
  const clients = variants.map((variant) => ({ variant, client: createClient(variant, upstreamUrl), failed: 0 }));
  const loop = async (entry: (typeof clients)[number], count: number): Promise<void> => {
    let started = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (started++ < count) {
          try {
            const body = (await entry.client.call()) as { hello?: string };
            if (body.hello !== 'world') throw new Error(`${entry.variant} did not get the upstream's body.`);
          } catch {
            // under valgrind a call can stall past a timeout: counted and reported, not fatal
            entry.failed++;
          }
        }
      }),
    );
  };
  for (const entry of clients) await loop(entry, warmupCalls);
  for (const entry of clients) entry.failed = 0;
  const control = (command: string) => promisify(execFile)('callgrind_control', [command, String(process.pid)]);
  await control('--instr=on');
  await control('--zero');
  for (let window = 0; window < windows; window++) {
    // the order alternates, so neither client always follows the other
    const turn = window % 2 === 0 ? clients : [...clients].reverse();
    for (const entry of turn) {
      await loop(entry, calls);
      // each dump writes the counts since the previous one to its own part file, then zeroes them
      await control(`--dump=${entry.variant}`);
    }
  }
  await control('--instr=off');
  for (const entry of clients) {
    if (entry.failed > 0) console.error(`  ${entry.variant}: ${entry.failed} of ${calls * windows} counted calls failed (valgrind stalled the process past a timeout); their error path is in the count.`);
    await entry.client.close();
  }
}

/** The parent: the upstream, one callgrind process counting every variant, then the table. */
async function main(): Promise<void> {
  const warmupCalls = countFromEnv('BENCH_WARMUP_CALLS', DEFAULT_WARMUP_CALLS);
  const calls = countFromEnv('BENCH_CALLS', DEFAULT_CALLS);
  const windows = countFromEnv('BENCH_WINDOWS', DEFAULT_WINDOWS);
  const variants = VARIANTS;
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    throw new Error('This benchmark needs valgrind (callgrind) on PATH: apt-get install valgrind.');
  }
  const method = `${warmupCalls} warm-up calls each, then ${windows} counted windows of ${calls} calls each, taking turns, ${IN_FLIGHT} in flight`;
  console.error(`http-client instructions: ${variants.join(', ')}; ${method}, Node ${process.version}`);
  const servers: ServerChild[] = [];
  const outputDir = mkdtempSync(join(tmpdir(), 'nest-resilience-http-client-instructions-'));
  const perCall = new Map<InstructionVariant, number>();
  const lowestPerCall = new Map<InstructionVariant, number>();
  try {
    const upstream = await startServer(new URL('./upstream.js', import.meta.url), 'http-client-upstream', {});
    servers.push(upstream);
    const child = spawnSync(
      'valgrind',
      [
        ...callgrindArgs(join(outputDir, 'calls.%p')),
        process.execPath,
        ...NODE_FLAGS,
        fileURLToPath(import.meta.url),
      ],
      {
        env: {
          ...process.env,
          HTTP_CLIENT_INSTRUCTIONS_VARIANTS: variants.join(','),
          HTTP_CLIENT_INSTRUCTIONS_UPSTREAM: upstream.url,
          BENCH_WARMUP_CALLS: String(warmupCalls),
          BENCH_CALLS: String(calls),
          BENCH_WINDOWS: String(windows),
        },
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    if (child.status !== 0) throw new Error(`The measured process exited with ${child.status ?? child.signal}.`);
    const dumps = windowTotals(outputDir);
    for (const variant of variants) {
      const perWindow = (dumps.get(variant) ?? []).map((total) => total / calls);
      if (perWindow.length !== windows) throw new Error(`${variant}: callgrind wrote ${perWindow.length} dumps, not ${windows}.`);
      perCall.set(variant, median(perWindow));
      lowestPerCall.set(variant, Math.min(...perWindow));
      console.error(`  ${variant.padEnd(12)} ${perWindow.map((value) => Math.round(value).toLocaleString('en-US')).join(' ')} instructions/call`);
    }
  } finally {
    rmSync(outputDir, { recursive: true, force: true });
    await stopAll(servers);
  }
  const undici = perCall.get('undici')!;
  const format = (figure: number) => Math.round(figure).toLocaleString('en-US');
  const rows = variants.map((variant) => {
    const value = perCall.get(variant)!;
    return [CLIENT_LABELS[variant], format(value), variant === 'undici' ? '–' : formatRatio(undici / value), format(lowestPerCall.get(variant)!)];
  });
  console.log(`\n## HTTP client: caller instructions per loopback GET (callgrind; ${method}; Node ${process.version})\n`);
  console.log(markdownTable(['client', 'instructions / call (median window)', 'undici ÷ client', 'lowest window'], rows));
  const client = perCall.get('http-client');
  if (client !== undefined) {
    const ratio = undici / client;
    console.log(`\n${ratio >= GOAL ? 'Goal met' : 'GOAL MISSED'}: raw undici's instructions per call ÷ HttpClient's = ${formatRatio(ratio)} (goal ≥ ${GOAL}).`);
  }
}

/** The instructions of every counted window, by variant, in order (each dump is named by its variant). */
function windowTotals(outputDir: string): Map<string, number[]> {
  const dumps = readdirSync(outputDir)
    .map((name) => ({ name, part: Number(/\.(\d+)$/.exec(name)?.[1]) }))
    .filter((dump) => Number.isInteger(dump.part) && dump.part > 0)
    .sort((a, b) => a.part - b.part);
  const totals = new Map<string, number[]>();
  for (const { name } of dumps) {
    const text = readFileSync(join(outputDir, name), 'utf8');
    const variant = /^desc: Trigger: .*?(\S+)$/m.exec(text)?.[1];
    const total = /^(?:totals|summary): (\d+)/m.exec(text)?.[1];
    if (variant === undefined || total === undefined) throw new Error(`The callgrind dump ${name} has no trigger or totals line.`);
    totals.set(variant, [...(totals.get(variant) ?? []), Number(total)]);
  }
  return totals;
}

const childVariants = process.env.HTTP_CLIENT_INSTRUCTIONS_VARIANTS;
if (childVariants !== undefined) {
  await measure(
    childVariants.split(',') as InstructionVariant[],
    process.env.HTTP_CLIENT_INSTRUCTIONS_UPSTREAM!,
    countFromEnv('BENCH_WARMUP_CALLS', DEFAULT_WARMUP_CALLS),
    countFromEnv('BENCH_CALLS', DEFAULT_CALLS),
    countFromEnv('BENCH_WINDOWS', DEFAULT_WINDOWS),
  );
  process.exit(0);
} else {
  await main();
}
