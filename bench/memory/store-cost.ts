// CPU instructions per operation of InMemoryIdempotencyStore, counted by valgrind's callgrind, for
// this build and optionally an older one side by side (BENCH_BEFORE_DIST=<its dist directory>):
// a new key (claim + complete) below the limits, a new key on a full store (one eviction each),
// and a replay. Each figure is (instructions of N2 operations − of N1) / (N2 − N1), so start-up,
// module loading and the warm-up cancel out; garbage collection is included.
//   npm run build:sample && node build/bench/memory/store-cost.js
//   BENCH_BEFORE_DIST=/tmp/old/dist node build/bench/memory/store-cost.js
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { environment, markdownTable, packageRoot, writeResults } from '../shared/report.js';

const MODES = ['new-key', 'new-key-full', 'replay'] as const;
const WARMUP = Number(process.env.BENCH_WARMUP_OPS ?? 20_000);
const N1 = Number(process.env.BENCH_OPS_SHORT ?? 10_000);
const N2 = Number(process.env.BENCH_OPS_LONG ?? 30_000);
const script = fileURLToPath(new URL('./store-ops.js', import.meta.url));

function instructions(module: string, mode: string, count: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'nest-resilience-store-cost-'));
  try {
    const run = spawnSync('valgrind', ['--quiet', '--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${join(dir, 'out.%p')}`, process.execPath, script, mode, String(WARMUP), String(count)], {
      env: { ...process.env, BENCH_STORE_MODULE: module },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (run.status !== 0) throw new Error(`callgrind run of ${mode} × ${count} failed (status ${run.status}).`);
    let total = 0;
    for (const file of readdirSync(dir)) {
      const match = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(dir, file), 'utf8'));
      if (match) total += Number(match[1]);
    }
    return total;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function perOperation(module: string, mode: string): number {
  return (instructions(module, mode, N2) - instructions(module, mode, N1)) / (N2 - N1);
}

const builds: Array<[string, string]> = [['this build', join(packageRoot(), 'dist', 'core', 'index.js')]];
if (process.env.BENCH_BEFORE_DIST) builds.unshift(['before', join(process.env.BENCH_BEFORE_DIST, 'core', 'index.js')]);
const results: Record<string, Record<string, number>> = {};
for (const [name, module] of builds) {
  results[name] = {};
  for (const mode of MODES) {
    results[name]![mode] = Math.round(perOperation(module, mode));
    console.error(`${name.padEnd(10)} ${mode.padEnd(13)} ${results[name]![mode]!.toLocaleString('en-US')} instructions/operation`);
  }
}
const header = ['operation', ...builds.map(([name]) => name), ...(builds.length === 2 ? ['change'] : [])];
const rows = MODES.map((mode) => {
  const values = builds.map(([name]) => results[name]![mode]!);
  return [mode, ...values.map((value) => value.toLocaleString('en-US')), ...(values.length === 2 ? [`${values[1]! - values[0]! >= 0 ? '+' : ''}${(values[1]! - values[0]!).toLocaleString('en-US')}`] : [])];
});
console.log(markdownTable(header, rows));
writeResults('store-cost.json', { environment: environment(), method: `callgrind, (I(${N2}) − I(${N1})) / ${N2 - N1} after ${WARMUP} warm-up operations`, results });
