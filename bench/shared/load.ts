// Load generation (autocannon, in the parent process) and the statistics the tables report.
import autocannon from 'autocannon';

/** One autocannon run against one server. */
export interface Sample {
  /** Mean requests per second over the run's one-second samples. */
  readonly rps: number;
  /** Latency percentiles, ms. */
  readonly p50: number;
  readonly p99: number;
  /** Responses received. */
  readonly total: number;
  readonly non2xx: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  readonly statusCodes: Record<string, number>;
  /**
   * Server CPU time (user + system) per response, µs. Much less sensitive than req/s to other
   * processes competing for the cores, so it is the figure to trust on a busy machine.
   */
  readonly cpuUsPerRequest: number;
}

/** What to send. `setupRequest` rewrites each request (e.g. a fresh idempotency key). */
export interface LoadSpec {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly setupRequest?: autocannon.RequestOptions['setupRequest'];
}

/** How long a run may overrun its duration before it is stopped (a hung server must not hang the bench). */
const OVERRUN_GRACE_MS = 30_000;

/**
 * Runs autocannon against `baseUrl` for `duration` seconds with `connections` connections.
 * `serverCpu` reads the server's CPU time (µs) before and after, for the CPU cost per request.
 */
export async function measure(
  baseUrl: string,
  spec: LoadSpec,
  duration: number,
  connections: number,
  serverCpu?: () => Promise<number>,
): Promise<Sample> {
  const cpuBefore = serverCpu ? await serverCpu() : Number.NaN;
  const instance = autocannon({
    url: baseUrl,
    connections,
    duration,
    timeout: 10,
    requests: [
      {
        method: spec.method ?? 'GET',
        path: spec.path,
        headers: spec.headers ?? {},
        ...(spec.body === undefined ? {} : { body: spec.body }),
        ...(spec.setupRequest ? { setupRequest: spec.setupRequest } : {}),
      },
    ],
  });
  const guard = setTimeout(() => instance.stop(), duration * 1000 + OVERRUN_GRACE_MS);
  try {
    const result = await instance;
    const cpuAfter = serverCpu ? await serverCpu() : Number.NaN;
    const statusCodes: Record<string, number> = {};
    for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = Number(stat.count);
    return {
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      total: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      statusCodes,
      cpuUsPerRequest: (cpuAfter - cpuBefore) / Math.max(1, result.requests.total),
    };
  } finally {
    clearTimeout(guard);
  }
}

/** Median of `values` (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Summary of one variant over all rounds. */
export interface Summary {
  readonly medianRps: number;
  readonly medianP99: number;
  readonly medianP50: number;
  /** Median server CPU µs per response. */
  readonly medianCpuUs: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly rounds: readonly Sample[];
}

/** Medians over rounds, totals of failures. */
export function summarize(samples: readonly Sample[]): Summary {
  return {
    medianRps: median(samples.map((s) => s.rps)),
    medianP99: median(samples.map((s) => s.p99)),
    medianP50: median(samples.map((s) => s.p50)),
    medianCpuUs: median(samples.map((s) => s.cpuUsPerRequest)),
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    rounds: samples,
  };
}

/**
 * Runs `measureOne` for every target in `rounds` interleaved rounds, the starting target rotating
 * each round, so drift (thermal, other load on the machine) hits every target alike.
 */
export async function interleave<T>(
  targets: readonly T[],
  rounds: number,
  measureOne: (target: T, round: number) => Promise<Sample>,
): Promise<Map<T, Sample[]>> {
  const samples = new Map<T, Sample[]>(targets.map((target) => [target, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length];
      samples.get(target)!.push(await measureOne(target, round));
    }
  }
  return samples;
}

/**
 * Median over rounds of `pick(numerator's sample i) / pick(denominator's sample i)`: each sample is
 * paired with the other variant's sample of the same round (and process), so drift cancels out.
 */
export function pairedRatio(numerator: Summary, denominator: Summary, pick: (sample: Sample) => number): number {
  return median(numerator.rounds.map((sample, round) => pick(sample) / pick(denominator.rounds[round]!)));
}
