// CPU instructions per request of an @Idempotent() POST on the in-memory store, counted by
// valgrind's callgrind (as bench:instructions counts the overhead routes), for this build and an
// older one side by side (BENCH_BEFORE_DIST=<its dist directory>): a new key below the store's
// limits, a new key on a full store (one eviction per request: maxRecords 5,000 after a warm-up of
// more), and a replay. Counting starts after the warm-up; each figure is the mean of the counted
// windows (every thread: JIT, garbage collector), the median window is shown next to it.
//   npm run build:sample && node build/bench/memory/store-cost.js
//   BENCH_BEFORE_DIST=/tmp/old/dist node build/bench/memory/store-cost.js
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, stopAll, type ServerChild } from '../shared/children.js';
import { median } from '../shared/load.js';
import { environment, markdownTable, packageRoot, writeResults } from '../shared/report.js';

const ALL_SCENARIOS = ['new key', 'new key, full store', 'replay'] as const;
type Scenario = (typeof ALL_SCENARIOS)[number];
/** BENCH_SCENARIOS (comma-separated, e.g. `full`), else all: a scenario is picked when its name contains one of them. */
const SCENARIOS = ALL_SCENARIOS.filter((scenario) => !process.env.BENCH_SCENARIOS || process.env.BENCH_SCENARIOS.split(',').some((part) => scenario.includes(part.trim())));
const WARMUP = Number(process.env.BENCH_WARMUP_REQUESTS ?? 8_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1_000);
const WINDOWS = Number(process.env.BENCH_WINDOWS ?? 3);
const CONNECTIONS = 10;
const FULL_AT = 5_000;
const PLATFORM = process.env.BENCH_PLATFORMS?.split(',')[0] ?? 'fastify';

let keys = 0;
const BODY = JSON.stringify({ item: 'book', qty: 2 });

/** `count` POSTs: each with a new key, or all with `key`; every answer must be 201. */
async function send(url: string, agent: Agent, count: number, key?: string): Promise<void> {
  let left = count;
  const connection = async () => {
    while (left-- > 0) {
      await new Promise<void>((resolve, reject) => {
        const headers = { 'content-type': 'application/json', 'idempotency-key': key ?? `cost-${++keys}` };
        request(`${url}/orders`, { agent, method: 'POST', headers }, (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 201 ? resolve() : reject(new Error(`POST /orders answered ${response.statusCode}.`))));
        })
          .on('error', reject)
          .end(BODY);
      });
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, connection));
}

function control(server: ServerChild, command: string): void {
  execFileSync('callgrind_control', [command, String(server.pid)], { stdio: 'ignore' });
}

async function count(build: string, library: string, scenario: Scenario, outputDir: string): Promise<number[]> {
  const name = `cost-${build.replace(/\W+/g, '-')}-${scenario.replace(/\W+/g, '-')}`;
  const server = await startServer(
    new URL('./cost-server.js', import.meta.url),
    name,
    { BENCH_PLATFORM: PLATFORM, BENCH_LIBRARY: library, ...(scenario === 'new key, full store' ? { BENCH_MAX_RECORDS: String(FULL_AT) } : {}) },
    { execPath: 'valgrind', execArgv: ['--quiet', '--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${join(outputDir, `${name}.%p`)}`] },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  try {
    const replayKey = scenario === 'replay' ? `replayed-${build.replace(/\W+/g, '-')}` : undefined;
    await send(server.url, agent, WARMUP, replayKey);
    control(server, '--instr=on');
    control(server, '--zero');
    for (let window = 0; window < WINDOWS; window++) {
      await send(server.url, agent, REQUESTS, replayKey);
      control(server, '--dump');
    }
    control(server, '--instr=off');
  } finally {
    agent.destroy();
    await stopAll([server]);
  }
  return Array.from({ length: WINDOWS }, (_, window) => {
    const file = join(outputDir, `${name}.${server.pid}.${window + 1}`);
    const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(file, 'utf8'));
    if (!totals) throw new Error(`${name}: the callgrind dump ${file} has no totals line.`);
    return Number(totals[1]) / REQUESTS;
  });
}

async function main(): Promise<void> {
  const builds: Array<[string, string]> = [['this build', join(packageRoot(), 'dist', 'index.js')]];
  if (process.env.BENCH_BEFORE_DIST) builds.unshift(['before', join(process.env.BENCH_BEFORE_DIST, 'index.js')]);
  // BENCH_KEEP_DUMPS=<dir>: keep the callgrind dumps there (callgrind_annotate shows where the instructions go)
  const outputDir = process.env.BENCH_KEEP_DUMPS ?? mkdtempSync(join(tmpdir(), 'nest-resilience-store-cost-'));
  const results: Record<string, Record<string, { mean: number; median: number; windows: number[] }>> = {};
  try {
    for (const scenario of SCENARIOS) {
      for (const [build, library] of builds) {
        const windows = await count(build, library, scenario, outputDir);
        const mean = windows.reduce((sum, value) => sum + value, 0) / windows.length;
        (results[build] ??= {})[scenario] = { mean: Math.round(mean), median: Math.round(median(windows)), windows: windows.map(Math.round) };
        console.error(`${build.padEnd(10)} ${scenario.padEnd(20)} ${windows.map((value) => Math.round(value).toLocaleString('en-US')).join(' ')} instructions/request`);
      }
    }
  } finally {
    if (!process.env.BENCH_KEEP_DUMPS) rmSync(outputDir, { recursive: true, force: true });
  }
  const cell = (figure: { mean: number; median: number }) => `${figure.mean.toLocaleString('en-US')} (median ${figure.median.toLocaleString('en-US')})`;
  const rows = SCENARIOS.map((scenario) => {
    const figures = builds.map(([build]) => results[build]![scenario]!);
    const change = figures.length === 2 ? [`${((figures[1]!.mean / figures[0]!.mean - 1) * 100).toFixed(1)} %`] : [];
    return [scenario, ...figures.map(cell), ...change];
  });
  console.log(`\n${PLATFORM}, ${WARMUP} warm-up requests, ${WINDOWS} windows of ${REQUESTS} requests, ${CONNECTIONS} connections\n`);
  console.log(markdownTable(['POST /orders, in-memory store', ...builds.map(([build]) => build), ...(builds.length === 2 ? ['change'] : [])], rows));
  writeResults('store-cost.json', { environment: environment(), platform: PLATFORM, warmup: WARMUP, windows: WINDOWS, requests: REQUESTS, results });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
