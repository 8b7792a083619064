// Tables, result files and the package root (results go to <root>/bench/results, not build/).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { cpuPinning, SERVER_NODE_FLAGS } from './children.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory of the `nest-resilience` package.json above `from`. */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'nest-resilience') return dir;
    if (dirname(dir) === dir) throw new Error(`No nest-resilience package.json above ${from}.`);
  }
}

/** `<root>/bench/results`, created on demand. */
export function resultsDir(): string {
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes `data` as pretty JSON to `bench/results/<name>` and returns the path. */
export function writeResults(name: string, data: unknown): string {
  const file = join(resultsDir(), name);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Where and how the figures were taken, stored with them. */
export function environment(): Record<string, unknown> {
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`,
    loadAverageAtEnd: loadavg().map((n) => Number(n.toFixed(2))),
    cpuPinning: cpuPinning() ?? 'off',
    serverNodeFlags: SERVER_NODE_FLAGS,
  };
}

/** A GitHub-flavoured markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** `1234.5` → `1,235`. */
export function formatRps(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a';
}

/** Milliseconds with one decimal when small (autocannon resolves latency to 1 ms: 0 means below it). */
export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value === 0) return '< 1 ms';
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

/** `0.9712` → `0.97`. */
export function formatRatio(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : 'n/a';
}

/** Microseconds, no decimals. */
export function formatUs(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value)} µs` : 'n/a';
}

/** How to rerun `script` with this run's settings (its BENCH_* variables and flags; DATABASE_URL masked). */
export function commandLine(script: string): string {
  const env = Object.entries(process.env)
    .filter(([name]) => name.startsWith('BENCH_') || name === 'DATABASE_URL')
    .map(([name, value]) => `${name}=${name === 'DATABASE_URL' ? '<set>' : value} `)
    .join('');
  return `${env}npm run ${script}${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
}
