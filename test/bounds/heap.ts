import { appendFileSync } from 'node:fs';
import { expect } from 'vitest';

/** 10^5 distinct keys: what every flood test sends at one structure. */
export const FLOOD_KEYS = 100_000;

/** Full collections (twice: the first may only queue finalisers), then the heap in use, in bytes. */
export function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    throw new Error('Flood tests measure the heap after a full GC: run them in the vitest "bounds" project (npx vitest run --project bounds), which starts node with --expose-gc.');
  }
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * How much the heap grew, after a full GC, while `flood` ran; `keep` holds what must stay
 * reachable (the structure under test) until the second measurement.
 */
export async function heapGrowthOf(flood: () => unknown, keep?: unknown): Promise<number> {
  const before = heapAfterGc();
  await flood();
  const after = heapAfterGc();
  // read `keep` after the measurement so the structure cannot be collected before it
  expect(keep === undefined || keep !== null).toBe(true);
  return after - before;
}

/** `bytes` as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}

/** Calls `each(i)` for i in [0, count), yielding to the event loop every `batch` calls (timers, I/O). */
export async function floodKeys(count: number, each: (index: number) => unknown, batch = 5_000): Promise<void> {
  for (let i = 0; i < count; i++) {
    const result = each(i);
    if (result instanceof Promise) await result;
    if (i % batch === batch - 1) await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Asserts that `growth` stays under `bound`, and records the figure for the memory benchmark
 * (`npm run bench:memory` runs these tests with BOUNDS_FIGURES set and prints the table).
 */
export function expectWithin(structure: string, growth: number, bound: number, extra: Record<string, unknown> = {}): void {
  const file = process.env.BOUNDS_FIGURES;
  if (file) appendFileSync(file, `${JSON.stringify({ structure, growth, bound, ...extra })}\n`);
  expect(growth, `${structure}: the heap grew by ${mib(growth)} (bound ${mib(bound)})`).toBeLessThan(bound);
}
