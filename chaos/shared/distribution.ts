// How long requests waited: nearest-rank percentiles for the figure lines.

/** Nearest-rank percentile `p` (0–1) of ascending `sorted` (0 for none). */
function rank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** Nearest-rank percentile `p` (0–1) of `values` (0 for none). */
export function percentile(values: readonly number[], p: number): number {
  return rank([...values].sort((a, b) => a - b), p);
}

/** p50 / p99 / max of `values` (nearest rank; zeros for none). */
export function distributionOf(values: readonly number[]): { count: number; p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: rank(sorted, 0.5), p99: rank(sorted, 0.99), max: sorted.at(-1) ?? 0 };
}

/** `p50 12 / p99 40 / max 51 ms (n 300)`. */
export function formatDistribution(d: { count: number; p50: number; p99: number; max: number }): string {
  return `p50 ${Math.round(d.p50)} / p99 ${Math.round(d.p99)} / max ${Math.round(d.max)} ms (n ${d.count})`;
}
