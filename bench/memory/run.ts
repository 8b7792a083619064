// Memory of the default idempotency store under a flood of new keys (issue 29's trial), and of one
// large response: heap after a full GC before and after, in a server started with --expose-gc.
// Then the flood tests of every per-key structure (vitest project `bounds`, 10^5 distinct keys
// each), whose measured heap growth is collected into the same results.
//   npm run bench:memory                        100,000 keys × 2 KB bodies, a 5 MB response, the floods
//   BENCH_KEYS=60000 BENCH_PLATFORMS=express,fastify npm run bench:memory
//   BENCH_STRUCTURES=0 npm run bench:memory     the HTTP trial only
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startServer, stopAll, type ServerChild } from '../shared/children.js';
import { commandLine, environment, markdownTable, packageRoot, writeResults } from '../shared/report.js';
import type { Platform } from '../shared/server-harness.js';

const KEYS = Number(process.env.BENCH_KEYS ?? 100_000);
const BODY_BYTES = Number(process.env.BENCH_BODY_BYTES ?? 2_048);
const CONCURRENCY = Number(process.env.BENCH_CONNECTIONS ?? 32);
const BIG_BYTES = Number(process.env.BENCH_BIG_BYTES ?? 5 * 1024 * 1024);
const PLATFORMS = (process.env.BENCH_PLATFORMS ?? 'express').split(',').map((name) => name.trim()) as Platform[];
const MIB = 1024 * 1024;

interface Heap {
  readonly heapUsed: number;
  readonly rss: number;
  readonly external: number;
}

interface FloodResult {
  readonly platform: Platform;
  readonly keys: number;
  readonly bodyBytes: number;
  readonly seconds: number;
  readonly statuses: Record<string, number>;
  readonly problemCodes: Record<string, number>;
  readonly before: Heap;
  readonly after: Heap;
  readonly records: number | null;
  readonly big: { readonly bytes: number; readonly firstStatus: number; readonly replayStatus: number; readonly replayCode: string | null; readonly executions: number; readonly heapGrowth: number };
}

/** A JSON body of `bytes` bytes (within a few), distinct per `index`. */
function bodyOf(index: number, bytes: number): string {
  const prefix = `{"n":${index},"data":"`;
  return `${prefix}${'x'.repeat(Math.max(0, bytes - prefix.length - 2))}"}`;
}

async function post(pool: Pool, path: string, key: string, body: string): Promise<{ status: number; code: string | null }> {
  const response = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json', 'idempotency-key': key }, body });
  const text = await response.body.text();
  let code: string | null = null;
  if (response.statusCode >= 400) {
    try {
      code = (JSON.parse(text) as { code?: string }).code ?? null;
    } catch {
      code = null;
    }
  } else if (String(response.headers['content-type'] ?? '').includes('problem+json')) {
    code = (JSON.parse(text) as { code?: string }).code ?? null;
  }
  return { status: response.statusCode, code };
}

async function flood(server: ServerChild, platform: Platform): Promise<FloodResult> {
  const pool = new Pool(server.url, { connections: CONCURRENCY, pipelining: 1 });
  try {
    // warm-up on one key (replays add no record), so the baseline has the JIT and pools in it
    for (let i = 0; i < 2_000; i++) await post(pool, '/echo', 'warm-up', bodyOf(0, BODY_BYTES));
    const before = await server.call<Heap>('heap');
    const statuses: Record<string, number> = {};
    const problemCodes: Record<string, number> = {};
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < KEYS) {
          const index = next++;
          const { status, code } = await post(pool, '/echo', `flood-${index}`, bodyOf(index, BODY_BYTES));
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (code) problemCodes[code] = (problemCodes[code] ?? 0) + 1;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = await server.call<Heap>('heap');
    const { records } = await server.call<{ records: number | null }>('store');

    const bigBefore = await server.call<Heap>('heap');
    const executionsBefore = await server.call<number>('executions');
    const first = await post(pool, '/big', 'big-1', '{}');
    const replay = await post(pool, '/big', 'big-1', '{}');
    const bigAfter = await server.call<Heap>('heap');
    const executions = (await server.call<number>('executions')) - executionsBefore;
    return {
      platform,
      keys: KEYS,
      bodyBytes: BODY_BYTES,
      seconds,
      statuses,
      problemCodes,
      before,
      after,
      records,
      big: { bytes: BIG_BYTES, firstStatus: first.status, replayStatus: replay.status, replayCode: replay.code, executions, heapGrowth: bigAfter.heapUsed - bigBefore.heapUsed },
    };
  } finally {
    await pool.close();
  }
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

interface StructureFigure {
  readonly structure: string;
  readonly growth: number;
  readonly bound: number;
  readonly records?: number;
}

/** Runs the flood tests (`vitest --project bounds`) and reads the heap growth each one measured. */
function structureFloods(): StructureFigure[] {
  const file = join(tmpdir(), `nest-resilience-bounds-${process.pid}.jsonl`);
  rmSync(file, { force: true });
  console.log('\nFlood tests of every per-key structure (vitest project "bounds", 10^5 distinct keys each)…');
  const run = spawnSync('npx', ['--no', 'vitest', 'run', '--project', 'bounds'], { cwd: packageRoot(), stdio: 'inherit', env: { ...process.env, BOUNDS_FIGURES: file } });
  if (run.status !== 0) console.error('Some flood tests failed: their figures are missing or over their bound.');
  if (!existsSync(file)) return [];
  const figures = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as StructureFigure);
  rmSync(file, { force: true });
  return figures;
}

async function main(): Promise<void> {
  const results: FloodResult[] = [];
  for (const platform of PLATFORMS) {
    const server = await startServer(new URL('./server.js', import.meta.url), `memory-${platform}`, { BENCH_PLATFORM: platform, BENCH_BIG_BYTES: String(BIG_BYTES) }, undefined, ['--expose-gc']);
    try {
      console.log(`${platform}: ${KEYS.toLocaleString('en-US')} new keys × ${BODY_BYTES} B bodies, ${CONCURRENCY} in flight…`);
      results.push(await flood(server, platform));
    } finally {
      await stopAll([server]);
    }
  }
  const rows = results.map((r) => [
    r.platform,
    r.keys.toLocaleString('en-US'),
    `${r.seconds.toFixed(1)} s`,
    Object.entries(r.statuses).map(([status, count]) => `${status}: ${count}`).join(', '),
    mib(r.before.heapUsed),
    mib(r.after.heapUsed),
    `+${mib(r.after.heapUsed - r.before.heapUsed)}`,
    `${((r.after.heapUsed - r.before.heapUsed) / r.keys).toFixed(0)} B`,
    `+${mib(r.after.rss - r.before.rss)}`,
    r.records === null ? 'n/a' : r.records.toLocaleString('en-US'),
  ]);
  console.log(`\n${markdownTable(['platform', 'keys', 'time', 'statuses', 'heap before', 'heap after', 'growth', 'per key', 'RSS growth', 'records kept'], rows)}`);
  const bigRows = results.map((r) => [
    r.platform,
    mib(r.big.bytes),
    String(r.big.firstStatus),
    `${r.big.replayStatus}${r.big.replayCode ? ` ${r.big.replayCode}` : ''}`,
    String(r.big.executions),
    `${r.big.heapGrowth >= 0 ? '+' : ''}${mib(r.big.heapGrowth)}`,
  ]);
  console.log(`\n${markdownTable(['platform', 'response', 'first', 'replay', 'handler runs', 'heap growth after GC'], bigRows)}`);
  const structures = process.env.BENCH_STRUCTURES === '0' ? [] : structureFloods();
  if (structures.length > 0) {
    const structureRows = structures.map((figure) => [figure.structure, mib(figure.growth), mib(figure.bound), figure.growth < figure.bound ? 'yes' : '**no**']);
    console.log(`\n${markdownTable(['structure (flood)', 'heap growth after GC', 'bound asserted', 'within'], structureRows)}`);
  }
  const file = writeResults('memory.json', { environment: environment(), command: commandLine('bench:memory'), results, structures });
  console.log(`\nResults: ${file}\nCommand: ${commandLine('bench:memory')}`);
}

await main();
