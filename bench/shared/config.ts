import type { Platform } from './server-harness.js';

/** Settings shared by both benchmarks; flags win over environment variables, which win over defaults. */
export interface BenchConfig {
  /** Seconds of load per variant per round. */
  readonly duration: number;
  /** Interleaved rounds; the reported figure is the median over rounds. */
  readonly rounds: number;
  /** Seconds of load per variant before the first round (JIT, pools, caches). */
  readonly warmup: number;
  /** Concurrent autocannon connections. */
  readonly connections: number;
  /** HTTP platforms to measure. */
  readonly platforms: readonly Platform[];
  /** Profile each server during its first measured round (bench/results/profiles/<server>.cpuprofile). */
  readonly cpuProfile: boolean;
  /**
   * Server processes per variant (overhead benchmark): identical code runs a few % faster or slower
   * in one process than in another, so each variant is measured in several and paired by index.
   */
  readonly processes: number;
}

const helpText = (defaults: RunDefaults) => `Options (flag or environment variable):
  --duration=S     BENCH_DURATION     seconds per variant per round   (default ${defaults.duration})
  --rounds=N       BENCH_ROUNDS       interleaved rounds              (default ${defaults.rounds})
  --warmup=S       BENCH_WARMUP       warm-up seconds per variant     (default min(2, duration / 2))
  --connections=N  BENCH_CONNECTIONS  autocannon connections          (default 10)
  --platforms=L    BENCH_PLATFORMS    express,fastify                 (default both)
  --processes=N    BENCH_PROCESSES    server processes per variant, overhead only (default ${defaults.processes ?? 1})
  --cpu-prof       BENCH_CPU_PROF=1   CPU-profile each server during its round-1 window
                                      (bench/results/profiles/<server>.cpuprofile)
  BENCH_PIN=0                         do not pin servers and load generator to separate CPUs
Quick run: BENCH_DURATION=2 BENCH_ROUNDS=1 (overhead: add BENCH_PROCESSES=1)`;

/** Per-benchmark defaults of the run length. */
export interface RunDefaults {
  readonly duration: number;
  readonly rounds: number;
  readonly processes?: number;
}

/** Reads the settings from `argv` and `env`; prints help and exits on `--help`. */
export function readConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
  defaults: RunDefaults = { duration: 5, rounds: 3 },
): BenchConfig {
  const help = helpText(defaults);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help);
    process.exit(0);
  }
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`Unknown argument "${arg}".\n${help}`);
    flags.set(match[1], match[2] ?? 'true');
  }
  const pick = (flag: string, variable: string): string | undefined => flags.get(flag) ?? env[variable];
  const duration = positive(pick('duration', 'BENCH_DURATION'), defaults.duration, 'duration', help);
  const platforms = (pick('platforms', 'BENCH_PLATFORMS') ?? 'express,fastify').split(',').map((p) => p.trim());
  for (const platform of platforms) {
    if (platform !== 'express' && platform !== 'fastify') throw new Error(`Unknown platform "${platform}": use express and/or fastify.`);
  }
  return {
    duration,
    rounds: Math.round(positive(pick('rounds', 'BENCH_ROUNDS'), defaults.rounds, 'rounds', help)),
    warmup: positive(pick('warmup', 'BENCH_WARMUP'), Math.min(2, duration / 2), 'warmup', help),
    connections: Math.round(positive(pick('connections', 'BENCH_CONNECTIONS'), 10, 'connections', help)),
    platforms: platforms as Platform[],
    cpuProfile: ['1', 'true'].includes(pick('cpu-prof', 'BENCH_CPU_PROF') ?? ''),
    processes: Math.round(positive(pick('processes', 'BENCH_PROCESSES'), defaults.processes ?? 1, 'processes', help)),
  };
}

function positive(raw: string | undefined, fallback: number, name: string, help: string): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${raw}").\n${help}`);
  return value;
}

/** The positive integer in the environment variable `name`, or `fallback` when it is unset or empty. */
export function countFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer; got ${raw}.`);
  return value;
}
