// CPU instructions per request of the overhead routes and of the idempotent POST routes (ours and
// @node-idempotency/nestjs's, new key and replay), counted by valgrind's callgrind.
//   npm run bench:instructions                     every variant on Express and Fastify
//   BENCH_PLATFORMS=fastify npm run bench:instructions
//   BENCH_VARIANTS=idempotent-new-key,idempotent-replay npm run bench:instructions   (with their peer pairs and POST baseline)
// Instruction counts do not depend on what else the machine is doing, so two runs give the same
// figures within a fraction of a percent: the steady companion of bench:overhead's req/s.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, stopAll, type ServerChild } from '../shared/children.js';
import { readConfig } from '../shared/config.js';
import { median } from '../shared/load.js';
import { commandLine, environment, formatRatio, markdownTable, writeResults } from '../shared/report.js';
import { installPeer } from '../idempotency/install-peer.js';
import {
  IDEMPOTENT_VARIANTS,
  IDEMPOTENT_VARIANT_LABELS,
  PEER_GOAL,
  PEER_PAIRS,
  STORE_OF,
  checkIdempotentRoute,
  idempotentRequestPlan,
  type IdempotentVariant,
  type RequestPlan,
} from './idempotent-variants.js';
import { DECORATED_VARIANTS, OVERHEAD_VARIANTS, VARIANT_LABELS, baselineOf, checkRoute, type OverheadVariant } from './variants.js';

/** Every variant this benchmark counts: the overhead routes, then the idempotent POST routes. */
const VARIANTS = [...OVERHEAD_VARIANTS, ...IDEMPOTENT_VARIANTS] as const;
type Variant = (typeof VARIANTS)[number];

const isIdempotent = (variant: Variant): variant is IdempotentVariant => (IDEMPOTENT_VARIANTS as readonly string[]).includes(variant);
const labelOf = (variant: Variant) => (isIdempotent(variant) ? IDEMPOTENT_VARIANT_LABELS[variant] : VARIANT_LABELS[variant]);
/** The route a variant is compared with: the bare GET of the same kind of process, or the POST without `@Idempotent()`. */
const baselineOfVariant = (variant: Variant): Variant => (isIdempotent(variant) ? 'post' : baselineOf(variant));
/** The app without the library, for the overhead routes only. */
const noLibraryOf = (variant: Variant): Variant | undefined => (isIdempotent(variant) ? undefined : 'no-library');

/** GET /hello, answered 200. */
const HELLO_PLAN: RequestPlan = {
  method: 'GET',
  path: '/hello',
  headersOf: () => ({}),
  problemWith: (status) => (status === 200 ? undefined : `GET /hello answered ${status}.`),
};

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
  if (variants.some((variant) => variant.startsWith('peer-'))) installPeer((line) => console.error(line));
  const log = (line: string) => console.error(line);
  const method = `${warmupRequests} warm-up requests, then ${windows} counted windows of ${requests} requests, ${config.connections} connections`;
  log(`instructions: ${config.platforms.join(' + ')}, ${variants.length} variants, ${method}`);

  const outputDir = mkdtempSync(join(tmpdir(), 'nest-resilience-callgrind-'));
  const results: Record<string, Record<string, unknown>> = {};
  const tables: string[] = [];
  const misses: string[] = [];
  try {
    for (const platform of config.platforms) {
      const counted = new Map<Variant, WindowCounts>();
      for (const variant of variants) {
        const name = `instructions-${platform}-${variant}`;
        const idempotent = isIdempotent(variant);
        const server = await startServer(
          idempotent ? new URL('../idempotency/server.js', import.meta.url) : new URL('./server.js', import.meta.url),
          name,
          idempotent ? { BENCH_PLATFORM: platform, BENCH_STORE: STORE_OF[variant] } : { BENCH_PLATFORM: platform, BENCH_VARIANT: variant },
          {
            execPath: 'valgrind',
            // JIT code rewrites itself: valgrind must re-check every non-file mapping for changes
            execArgv: ['--quiet', '--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${join(outputDir, `${name}.%p`)}`],
          },
        );
        try {
          if (idempotent) await checkIdempotentRoute(server, variant);
          else await checkRoute(server);
          const plan = idempotent ? idempotentRequestPlan(variant) : HELLO_PLAN;
          const windowTotals = await countInstructions(server, outputDir, plan, { warmupRequests, requests, windows, connections: config.connections });
          const perWindow = windowTotals.map((total) => total / requests);
          counted.set(variant, {
            mean: perWindow.reduce((sum, value) => sum + value, 0) / perWindow.length,
            median: median(perWindow),
            lowest: Math.min(...perWindow),
            windows: perWindow.map(Math.round),
          });
          log(`  ${platform.padEnd(7)} ${variant.padEnd(18)} ${perWindow.map((value) => Math.round(value).toLocaleString('en-US')).join(' ')} instructions/request`);
        } finally {
          await stopAll([server]);
        }
      }
      results[platform] = {};
      const format = (value: number) => Math.round(value).toLocaleString('en-US');
      const rows = variants.map((variant) => {
        const own = counted.get(variant)!;
        // each variant against the bare route of the same kind of process
        const baseline = counted.get(baselineOfVariant(variant))!;
        const noLibraryVariant = noLibraryOf(variant);
        const noLibrary = noLibraryVariant === undefined ? undefined : counted.get(noLibraryVariant);
        const ratio = baseline.lowest / own.lowest;
        const goal = (DECORATED_VARIANTS as readonly Variant[]).includes(variant) ? (ratio >= GOAL ? 'yes' : 'NO') : '';
        if (goal === 'NO') misses.push(`${platform} ${variant}: bare ÷ this ${formatRatio(ratio)} (lowest windows)`);
        results[platform][variant] = {
          lowestWindow: Math.round(own.lowest),
          medianWindow: Math.round(own.median),
          instructionsPerRequest: Math.round(own.mean),
          perWindow: own.windows,
          baseline: baselineOfVariant(variant),
          bareOverThis: ratio,
          bareOverThisMedians: baseline.median / own.median,
          noLibraryOverThis: noLibrary === undefined ? undefined : noLibrary.lowest / own.lowest,
        };
        return [
          labelOf(variant),
          format(own.lowest),
          format(own.median),
          format(own.mean),
          ratio.toFixed(3),
          (baseline.median / own.median).toFixed(3),
          goal,
          noLibrary === undefined ? '–' : (noLibrary.lowest / own.lowest).toFixed(3),
          own.windows.map((value) => value.toLocaleString('en-US')).join(' '),
        ];
      });
      const tableParts = [
        `### ${platform}\n\n${markdownTable(
          ['route', 'lowest window', 'median window', `mean of ${windows}`, 'bare ÷ this (lowest)', 'bare ÷ this (median)', `≥ ${GOAL}`, 'no module ÷ this (lowest)', 'windows'],
          rows,
        )}`,
      ];
      const peerRows = PEER_PAIRS.filter(({ ours, peer }) => counted.has(ours) && counted.has(peer)).map(({ ours, peer }) => {
        const mine = counted.get(ours)!;
        const theirs = counted.get(peer)!;
        const ratio = theirs.lowest / mine.lowest;
        const met = ratio >= PEER_GOAL;
        if (!met) misses.push(`${platform} ${peer} ÷ ${ours}: ${ratio.toFixed(3)} (lowest windows)`);
        results[platform][`${peer}÷${ours}`] = { peerOverOurs: ratio, peerOverOursMedians: theirs.median / mine.median, goal: PEER_GOAL, met };
        return [labelOf(ours), format(mine.lowest), format(theirs.lowest), ratio.toFixed(3), (theirs.median / mine.median).toFixed(3), met ? 'yes' : 'NO'];
      });
      if (peerRows.length > 0) {
        tableParts.push(
          `Against @node-idempotency/nestjs (in-memory adapter), same run:\n\n${markdownTable(
            ['ours', 'ours: lowest window', 'peer: lowest window', 'peer ÷ ours (lowest)', 'peer ÷ ours (median)', `≥ ${PEER_GOAL}`],
            peerRows,
          )}`,
        );
      }
      tables.push(tableParts.join('\n\n'));
    }
    const header = `## Instructions per request (callgrind; ${method}; ratios on the lowest windows)`;
    console.log(`\n${header}\n\n${tables.join('\n\n')}\n`);
    console.log(
      misses.length
        ? `GOAL MISSED (CPU work): ${misses.join('; ')}`
        : `Every decorated route needs at most 1/${GOAL} of the bare route's instructions per request, and the peer at least ${PEER_GOAL}× ours (where counted).`,
    );
    const file = writeResults('instructions.json', {
      benchmark: 'instructions',
      command: commandLine('bench:instructions'),
      config: { ...config, warmupRequests, requests, windows },
      goal: { bareOverThis: GOAL, peerOverOurs: PEER_GOAL, judgedOn: 'lowest window', met: misses.length === 0, misses },
      environment: environment(),
      results,
    });
    console.log(`Results written to ${file}`);
  } finally {
    rmSync(outputDir, { recursive: true, force: true });
  }
}

/**
 * The variants named by `--variants=a,b` / `BENCH_VARIANTS` (with their baselines, and each
 * idempotent variant with its peer pair), else all.
 */
function variantsToCount(): Variant[] {
  const raw = process.argv.find((arg) => arg.startsWith('--variants='))?.split('=')[1] ?? process.env.BENCH_VARIANTS;
  if (raw === undefined || raw === '') return [...VARIANTS];
  const named = raw.split(',').map((name) => name.trim());
  const unknown = named.filter((name) => !(VARIANTS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`--variants / BENCH_VARIANTS names unknown variants: ${unknown.join(', ')}. Known: ${VARIANTS.join(', ')}.`);
  const wanted = new Set(named as Variant[]);
  for (const { ours, peer } of PEER_PAIRS) {
    if (wanted.has(ours) || wanted.has(peer)) wanted.add(ours).add(peer);
  }
  for (const variant of [...wanted]) wanted.add(baselineOfVariant(variant));
  return VARIANTS.filter((variant) => wanted.has(variant));
}

/** Instructions per request of one variant's counted windows. */
interface WindowCounts {
  readonly mean: number;
  readonly median: number;
  readonly lowest: number;
  readonly windows: number[];
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
async function countInstructions(server: ServerChild, outputDir: string, requests: RequestPlan, plan: CountPlan): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: plan.connections });
  const sender = new RequestSender(server.url, agent, requests);
  try {
    await sender.send(plan.warmupRequests, plan.connections);
    callgrindControl(server, '--instr=on');
    callgrindControl(server, '--zero');
    for (let window = 0; window < plan.windows; window++) {
      await sender.send(plan.requests, plan.connections);
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

/** Sends a variant's requests over keep-alive connections, numbering them across calls (fresh keys stay fresh). */
class RequestSender {
  private sent = 0;

  constructor(
    private readonly url: string,
    private readonly agent: Agent,
    private readonly plan: RequestPlan,
  ) {}

  /** `count` requests over `connections` connections; every answer must be the one being measured. */
  async send(count: number, connections: number): Promise<void> {
    let left = count;
    const connection = async () => {
      while (left-- > 0) await this.one(this.sent++);
    };
    await Promise.all(Array.from({ length: connections }, connection));
  }

  private one(n: number): Promise<void> {
    const { plan } = this;
    return new Promise<void>((resolve, reject) => {
      request(`${this.url}${plan.path}`, { agent: this.agent, method: plan.method, headers: plan.headersOf(n) }, (response) => {
        response.resume();
        response.on('end', () => {
          const problem = plan.problemWith(response.statusCode, response.headers as IncomingHttpHeaders);
          if (problem === undefined) resolve();
          else reject(new Error(problem));
        });
      })
        .on('error', reject)
        .end(plan.body);
    });
  }
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
