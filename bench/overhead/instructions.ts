// CPU instructions per request of the overhead routes, counted by valgrind's callgrind.
//   npm run bench:instructions                     every variant on Express and Fastify (~5 min)
//   BENCH_PLATFORMS=fastify npm run bench:instructions
// Instruction counts do not depend on what else the machine is doing, so two runs give the same
// figures within a fraction of a percent: the steady companion of bench:overhead's req/s.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, stopAll, type ServerChild } from '../shared/children.js';
import { readConfig } from '../shared/config.js';
import { median } from '../shared/load.js';
import { commandLine, environment, formatRatio, markdownTable, writeResults } from '../shared/report.js';
import { DECORATED_VARIANTS, OVERHEAD_VARIANTS, VARIANT_LABELS, baselineOf, checkRoute, type OverheadVariant } from './variants.js';

/** Decorated routes must keep this share of the bare route's throughput: here, bare ÷ variant instructions. */
const GOAL = 0.95;

/** Requests before counting starts: under valgrind V8 needs many more of them to settle (with 20 000, @Retryable was still being recompiled). */
const DEFAULT_WARMUP_REQUESTS = 40_000;
/** Requests per counted window. */
const DEFAULT_REQUESTS = 1_000;
/**
 * Counted windows per server. The figure is the mean over all of them (every instruction the
 * requests cost, garbage collections included); the median window is shown next to it, since a
 * window that a full garbage collection or a TurboFan recompilation landed in counts 10–25 % more.
 */
const DEFAULT_WINDOWS = 5;

async function main(): Promise<void> {
  const config = readConfig();
  const warmupRequests = count('warmup-requests', 'BENCH_WARMUP_REQUESTS', DEFAULT_WARMUP_REQUESTS);
  const requests = count('requests', 'BENCH_REQUESTS', DEFAULT_REQUESTS);
  const windows = count('windows', 'BENCH_WINDOWS', DEFAULT_WINDOWS);
  const variants = variantsToCount();
  requireValgrind();
  const log = (line: string) => console.error(line);
  const method = `${warmupRequests} warm-up requests, then ${windows} counted windows of ${requests} requests, ${config.connections} connections`;
  log(`instructions: ${config.platforms.join(' + ')}, ${variants.length} variants, ${method}`);

  const outputDir = mkdtempSync(join(tmpdir(), 'nest-resilience-callgrind-'));
  const results: Record<string, Record<string, unknown>> = {};
  const tables: string[] = [];
  const misses: string[] = [];
  try {
    for (const platform of config.platforms) {
      const perRequest = new Map<OverheadVariant, number>();
      const medianOf = new Map<OverheadVariant, number>();
      const windowsOf = new Map<OverheadVariant, number[]>();
      for (const variant of variants) {
        const name = `instructions-${platform}-${variant}`;
        const server = await startServer(
          new URL('./server.js', import.meta.url),
          name,
          { BENCH_PLATFORM: platform, BENCH_VARIANT: variant },
          {
            execPath: 'valgrind',
            // JIT code rewrites itself: valgrind must re-check every non-file mapping for changes
            execArgv: ['--quiet', '--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${join(outputDir, `${name}.%p`)}`],
          },
        );
        try {
          await checkRoute(server);
          const windowTotals = await countInstructions(server, outputDir, { warmupRequests, requests, windows, connections: config.connections });
          const perWindow = windowTotals.map((total) => total / requests);
          perRequest.set(variant, perWindow.reduce((sum, value) => sum + value, 0) / perWindow.length);
          medianOf.set(variant, median(perWindow));
          windowsOf.set(variant, perWindow.map(Math.round));
          log(`  ${platform.padEnd(7)} ${variant.padEnd(10)} ${perWindow.map((value) => Math.round(value).toLocaleString('en-US')).join(' ')} instructions/request`);
        } finally {
          await stopAll([server]);
        }
      }
      const noLibrary = perRequest.get('no-library');
      results[platform] = {};
      const rows = variants.map((variant) => {
        const value = perRequest.get(variant)!;
        // each variant against the bare route of the same kind of process
        const baseline = baselineOf(variant);
        const bare = perRequest.get(baseline) ?? perRequest.get('bare')!;
        const ratio = bare / value;
        const goal = DECORATED_VARIANTS.includes(variant) ? (ratio >= GOAL ? 'yes' : 'NO') : '';
        if (goal === 'NO') misses.push(`${platform} ${variant}: ${formatRatio(ratio)}`);
        const medianWindow = medianOf.get(variant)!;
        results[platform][variant] = {
          instructionsPerRequest: Math.round(value),
          medianWindow: Math.round(medianWindow),
          perWindow: windowsOf.get(variant),
          bareOverThis: ratio,
          noLibraryOverThis: noLibrary === undefined ? undefined : noLibrary / value,
        };
        return [
          VARIANT_LABELS[variant],
          Math.round(value).toLocaleString('en-US'),
          `${value >= bare ? '+' : '−'}${Math.abs(Math.round(value - bare)).toLocaleString('en-US')}`,
          ratio.toFixed(3),
          goal,
          noLibrary === undefined ? '–' : (noLibrary / value).toFixed(2),
          Math.round(medianWindow).toLocaleString('en-US'),
          `${((medianOf.get(baseline) ?? medianOf.get('bare')!) / medianWindow).toFixed(3)}`,
        ];
      });
      tables.push(
        `### ${platform}\n\n${markdownTable(
          ['route', 'instructions / request (mean)', 'vs bare route', 'bare ÷ this', `≥ ${GOAL}`, 'no library ÷ this', 'median window', 'bare ÷ this (medians)'],
          rows,
        )}`,
      );
    }
    const header = `## Instructions per request, one trivial GET route (callgrind; ${method})`;
    console.log(`\n${header}\n\n${tables.join('\n\n')}\n`);
    console.log(
      misses.length
        ? `GOAL MISSED (CPU work): ${misses.join('; ')}`
        : `Every decorated route needs at most 1/${GOAL} of the bare route's instructions per request.`,
    );
    const file = writeResults('instructions.json', {
      benchmark: 'instructions',
      command: commandLine('bench:instructions'),
      config: { ...config, warmupRequests, requests, windows },
      goal: { bareOverThis: GOAL, met: misses.length === 0, misses },
      environment: environment(),
      results,
    });
    console.log(`Results written to ${file}`);
  } finally {
    rmSync(outputDir, { recursive: true, force: true });
  }
}

/** The variants named by `--variants=a,b` / `BENCH_VARIANTS` (their bare routes always included), else all. */
function variantsToCount(): OverheadVariant[] {
  const raw = process.argv.find((arg) => arg.startsWith('--variants='))?.split('=')[1] ?? process.env.BENCH_VARIANTS;
  if (raw === undefined || raw === '') return [...OVERHEAD_VARIANTS];
  const named = raw.split(',').map((name) => name.trim());
  const unknown = named.filter((name) => !OVERHEAD_VARIANTS.includes(name as OverheadVariant));
  if (unknown.length > 0) throw new Error(`--variants / BENCH_VARIANTS names unknown variants: ${unknown.join(', ')}. Known: ${OVERHEAD_VARIANTS.join(', ')}.`);
  const baselines = new Set(named.map((name) => baselineOf(name as OverheadVariant)));
  return OVERHEAD_VARIANTS.filter((variant) => variant === 'bare' || baselines.has(variant) || named.includes(variant));
}

/** How many requests a server gets before and while its instructions are counted. */
interface CountPlan {
  readonly warmupRequests: number;
  readonly requests: number;
  readonly windows: number;
  readonly connections: number;
}

/**
 * Sends the warm-up requests with counting off, then counts the instructions of `windows` windows
 * of `requests` requests each (every thread of the server: JIT, garbage collector and all) and
 * returns each window's total.
 */
async function countInstructions(server: ServerChild, outputDir: string, plan: CountPlan): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: plan.connections });
  try {
    await sendRequests(server.url, agent, plan.warmupRequests, plan.connections);
    callgrindControl(server, '--instr=on');
    callgrindControl(server, '--zero');
    for (let window = 0; window < plan.windows; window++) {
      await sendRequests(server.url, agent, plan.requests, plan.connections);
      // each dump writes the counts since the previous one to its own part file, then zeroes them
      callgrindControl(server, '--dump');
    }
    callgrindControl(server, '--instr=off');
  } finally {
    agent.destroy();
  }
  return Array.from({ length: plan.windows }, (_, window) => {
    const file = join(outputDir, `${server.name}.${server.pid}.${window + 1}`);
    const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(file, 'utf8'));
    if (!totals) throw new Error(`${server.name}: the callgrind dump ${file} has no totals line.`);
    return Number(totals[1]);
  });
}

/** `count` GET /hello requests over `connections` keep-alive connections; every answer must be 200. */
async function sendRequests(url: string, agent: Agent, count: number, connections: number): Promise<void> {
  let left = count;
  const connection = async () => {
    while (left-- > 0) {
      await new Promise<void>((resolve, reject) => {
        request(`${url}/hello`, { agent }, (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`GET /hello answered ${response.statusCode}.`))));
        })
          .on('error', reject)
          .end();
      });
    }
  };
  await Promise.all(Array.from({ length: connections }, connection));
}

function callgrindControl(server: ServerChild, command: string): void {
  execFileSync('callgrind_control', [command, String(server.pid)], { stdio: 'ignore' });
}

function requireValgrind(): void {
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
      throw new Error(`bench:instructions needs valgrind (it runs each server under callgrind): install it, e.g. \`apt-get install -y valgrind\`. "${tool}" was not found.`);
    }
  }
}

/** A positive whole number from `--flag=N` or `variable`, else `fallback`. */
function count(flag: string, variable: string, fallback: number): number {
  const raw = process.argv.find((arg) => arg.startsWith(`--${flag}=`))?.split('=')[1] ?? process.env[variable];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${flag} / ${variable} must be a positive whole number (got "${raw}").`);
  return value;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
