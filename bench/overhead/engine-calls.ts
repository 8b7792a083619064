// CPU instructions per call of the engine alone: a decorated route's wrapper called in-process,
// the way Nest's router calls it, with no HTTP server, client or framework around it.
//   npm run bench:engine                           every variant (~3–6 min on a busy 2-core machine)
//   BENCH_VARIANTS=both,both-context npm run bench:engine
// Each variant runs in its own process under valgrind's callgrind: warm-up calls with counting off,
// then counted windows (every thread of the process: JIT and garbage collector included); the
// median window is the figure, since a window that a full garbage collection or a recompilation
// landed in counts far more (the mean and the lowest window are shown beside it: a window with no
// full collection in it is about the engine's own work).
// Instruction counts do not depend on what else the machine is doing, so this is the figure to
// iterate on when changing the engine's hot path; bench:instructions then gives the whole-request
// ratios the goals are stated in.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { callgrindArgs } from '../shared/children.js';
import { countFromEnv } from '../shared/config.js';
import { median } from '../shared/load.js';
import { markdownTable } from '../shared/report.js';
import { routeCalls, variantsToCount, type EngineVariant } from './engine-harness.js';

const DEFAULT_WARMUP_CALLS = 50_000;
/** Calls per counted window. */
const DEFAULT_CALLS = 6_000;
const DEFAULT_WINDOWS = 5;

/**
 * V8 flags of the measured process: compilation on the main thread, so the counted window holds
 * the same JIT work run after run (concurrent compiler threads made two runs differ by up to 2×).
 */
const NODE_FLAGS = ['--no-concurrent-recompilation', '--no-concurrent-osr', '--no-concurrent-sparkplug'];

/** The child: builds the app, warms the route up, and has callgrind count `calls` calls of it. */
async function measure(variant: EngineVariant, warmupCalls: number, calls: number, windows: number): Promise<void> {
  // Under valgrind a call can stall for seconds while freshly compiled code is translated, so
  // `@Timeout(5000)` may really expire: such a call is counted and reported, not fatal.
  const { app, loop } = await routeCalls(variant, true);
  await loop(warmupCalls);
  const control = (command: string) => promisify(execFile)('callgrind_control', [command, String(process.pid)]);
  await control('--instr=on');
  await control('--zero');
  let failed = 0;
  for (let window = 0; window < windows; window++) {
    failed += await loop(calls);
    // each dump writes the counts since the previous one to its own part file, then zeroes them
    await control('--dump');
  }
  await control('--instr=off');
  if (failed > 0) console.error(`  ${variant}: ${failed} of ${calls * windows} counted calls failed (a timeout expired while valgrind stalled the process); their error path is in the count.`);
  await app.close();
}

/** The parent: one callgrind process per variant, then the table. */
function main(): void {
  const warmupCalls = countFromEnv('BENCH_WARMUP_CALLS', DEFAULT_WARMUP_CALLS);
  const calls = countFromEnv('BENCH_CALLS', DEFAULT_CALLS);
  const windows = countFromEnv('BENCH_WINDOWS', DEFAULT_WINDOWS);
  const variants = variantsToCount();
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    throw new Error('bench:engine needs valgrind (callgrind) on PATH: apt-get install valgrind.');
  }
  const method = `${warmupCalls} warm-up calls, then ${windows} counted windows of ${calls} calls`;
  console.error(`engine calls: ${variants.join(', ')}; ${method}, Node ${process.version}`);
  const outputDir = mkdtempSync(join(tmpdir(), 'nest-resilience-engine-calls-'));
  const perCall = new Map<EngineVariant, number>();
  const meanPerCall = new Map<EngineVariant, number>();
  const lowestPerCall = new Map<EngineVariant, number>();
  try {
    for (const variant of variants) {
      const child = spawnSync(
        'valgrind',
        [
          ...callgrindArgs(join(outputDir, `${variant}.%p`)),
          process.execPath,
          ...NODE_FLAGS,
          fileURLToPath(import.meta.url),
        ],
        { env: { ...process.env, ENGINE_CALLS_VARIANT: variant, BENCH_WARMUP_CALLS: String(warmupCalls), BENCH_CALLS: String(calls), BENCH_WINDOWS: String(windows) }, stdio: ['ignore', 'inherit', 'inherit'] },
      );
      if (child.status !== 0) throw new Error(`${variant}: the measured process exited with ${child.status ?? child.signal}.`);
      const perWindow = Array.from({ length: windows }, (_, window) => windowTotal(outputDir, variant, window + 1) / calls);
      perCall.set(variant, median(perWindow));
      meanPerCall.set(variant, perWindow.reduce((sum, value) => sum + value, 0) / windows);
      lowestPerCall.set(variant, Math.min(...perWindow));
      console.error(`  ${variant.padEnd(12)} ${perWindow.map((value) => Math.round(value).toLocaleString('en-US')).join(' ')} instructions/call`);
    }
  } finally {
    rmSync(outputDir, { recursive: true, force: true });
  }
  const bare = perCall.get('bare');
  const rows = variants.map((variant) => {
    const value = perCall.get(variant)!;
    const engine = bare === undefined || variant === 'bare' ? '–' : Math.round(value - bare).toLocaleString('en-US');
    const format = (figure: number) => Math.round(figure).toLocaleString('en-US');
    return [variant, format(value), engine, format(meanPerCall.get(variant)!), format(lowestPerCall.get(variant)!)];
  });
  console.log(`\n## Engine instructions per call (callgrind; ${method}; Node ${process.version})\n`);
  console.log(markdownTable(['variant', 'instructions / call (median window)', 'engine (− bare)', 'mean of the windows', 'lowest window'], rows));
}

/** The instructions callgrind counted in one window of `variant` (its `window`-th dump). */
function windowTotal(outputDir: string, variant: EngineVariant, window: number): number {
  const dump = readdirSync(outputDir).find((name) => name.startsWith(`${variant}.`) && name.endsWith(`.${window}`));
  if (dump === undefined) throw new Error(`${variant}: callgrind wrote no dump of counted window ${window}.`);
  const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(outputDir, dump), 'utf8'));
  if (!totals) throw new Error(`${variant}: the callgrind dump ${dump} has no totals line.`);
  return Number(totals[1]);
}


const childVariant = process.env.ENGINE_CALLS_VARIANT as EngineVariant | undefined;
if (childVariant !== undefined) {
  await measure(childVariant, countFromEnv('BENCH_WARMUP_CALLS', DEFAULT_WARMUP_CALLS), countFromEnv('BENCH_CALLS', DEFAULT_CALLS), countFromEnv('BENCH_WINDOWS', DEFAULT_WINDOWS));
  process.exit(0);
} else {
  main();
}
