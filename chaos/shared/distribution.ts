// How long requests waited: nearest-rank percentiles for the figure lines.

/** p50 / p99 / max of `values` (nearest rank; zeros for none). */
export function distributionOf(values: readonly number[]): { count: number; p50: number; p99: number; max: number } {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted.at(-1)! };
}

/** `p50 12 / p99 40 / max 51 ms (n 300)`. */
export function formatDistribution(d: { count: number; p50: number; p99: number; max: number }): string {
  return `p50 ${Math.round(d.p50)} / p99 ${Math.round(d.p99)} / max ${Math.round(d.max)} ms (n ${d.count})`;
}
