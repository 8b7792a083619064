// Bytes the engine allocates per call: a decorated route's wrapper called in-process, the way
// Nest's router calls it (the harness of engine-calls.ts), with the young generation made large
// enough that no garbage collection runs while a window is counted, so the growth of the heap over
// the window is what the calls allocated.
//   npm run bench:engine-allocations               every variant, seconds each
//   BENCH_VARIANTS=both npm run bench:engine-allocations
// Unlike time and (to a lesser degree) instruction counts, this does not depend on the machine's
// load or on when V8 collects: the same tree gives the same bytes, so two trees compare exactly.
// Garbage is what a call costs the collector later (on Node 24 ~14 % of a decorated route's engine
// instructions were GC); see BENCHMARKS.md for what each part of a call allocates.
import { spawnSync } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import { median } from '../shared/load.js';
import { markdownTable } from '../shared/report.js';
import { routeCalls, variantsToCount, type EngineVariant } from './engine-harness.js';

const WARMUP_CALLS = 200_000;
const CALLS = 20_000;
const WINDOWS = 5;

/**
 * V8 flags of the measured process: a young generation of 128–256 MB from the start (a window
 * allocates a few tens of MB), and `gc()` to start every window from a collected heap.
 */
const NODE_FLAGS = ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=256'];

/** The child: builds the app, warms the route up, and prints the bytes per call of each window. */
async function measure(variant: EngineVariant): Promise<void> {
  const { app, loop } = await routeCalls(variant, false);
  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  await loop(WARMUP_CALLS);
  const gc = (globalThis as { gc?: () => void }).gc!;
  const windows: number[] = [];
  for (let window = 0; window < WINDOWS; window++) {
    gc();
    // the collection's own entry is delivered asynchronously: let it arrive before counting
    await new Promise((resolve) => setTimeout(resolve, 20));
    const collectionsBefore = collections;
    const before = getHeapStatistics().used_heap_size;
    await loop(CALLS);
    const after = getHeapStatistics().used_heap_size;
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (collections !== collectionsBefore) throw new Error(`${variant}: a garbage collection ran during a counted window; the young generation is too small for ${CALLS} calls.`);
    windows.push((after - before) / CALLS);
  }
  observer.disconnect();
  console.log(JSON.stringify({ variant, windows }));
  await app.close();
}

/** The parent: one process per variant, then the table. */
function main(): void {
  const variants = variantsToCount();
  console.error(`engine allocations: ${variants.join(', ')}; ${WARMUP_CALLS} warm-up calls, then ${WINDOWS} windows of ${CALLS} calls, Node ${process.version}`);
  const perCall = new Map<EngineVariant, number>();
  for (const variant of variants) {
    const child = spawnSync(process.execPath, [...NODE_FLAGS, fileURLToPath(import.meta.url)], {
      env: { ...process.env, ENGINE_ALLOCATIONS_VARIANT: variant },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`${variant}: the measured process failed (exit ${child.status}).`);
    const { windows } = JSON.parse(child.stdout.trim().split('\n').pop()!) as { windows: number[] };
    perCall.set(variant, median(windows));
    console.error(`  ${variant.padEnd(12)} ${windows.map((bytes) => Math.round(bytes).toLocaleString('en-US')).join(' ')} bytes/call`);
  }
  const bare = perCall.get('bare');
  console.log(`\n## Engine allocations per call (${WARMUP_CALLS} warm-up calls, then ${WINDOWS} windows of ${CALLS} calls with no collection in them; Node ${process.version})\n`);
  console.log(
    markdownTable(
      ['variant', 'bytes / call (median window)', 'engine (− bare)'],
      [...perCall].map(([variant, bytes]) => [variant, Math.round(bytes).toLocaleString('en-US'), bare === undefined || variant === 'bare' ? '–' : Math.round(bytes - bare).toLocaleString('en-US')]),
    ),
  );
}

const childVariant = process.env.ENGINE_ALLOCATIONS_VARIANT as EngineVariant | undefined;
if (childVariant !== undefined) await measure(childVariant);
else main();
