// `npm run chaos`: every scenario of issue 13 in turn, each printing one figure line with PASS or
// FAIL against its threshold and its duration; exits non-zero when a figure misses.
//   npm run chaos                          the whole run (a few minutes on 2 cores)
//   npm run chaos -- --only=fuzz,budget    some scenarios
//   CHAOS_SEED=123 npm run chaos           the same generated cases as an earlier run
// Loopback only. PostgreSQL: DATABASE_URL (a fresh database is created and dropped) or a throwaway
// server of its own (scripts/postgres.mjs, fsync and synchronous_commit on); the outage scenario
// always starts its own server, since it stops it. Redis: the outage scenario starts a throwaway
// redis-server of its own (scripts/redis.mjs), REDIS_URL or not, since it kills it.
import 'reflect-metadata';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { environment, packageRoot } from '../bench/shared/report.js';
import { exactlyOnceScenario } from './scenarios/exactly-once.js';
import { fuzzScenario } from './scenarios/fuzz.js';
import { partitionScenario } from './scenarios/partition.js';
import { postgresHangScenario } from './scenarios/postgres-hang.js';
import { postgresOutageScenario } from './scenarios/postgres-outage.js';
import { redisHangScenario } from './scenarios/redis-hang.js';
import { redisOutageScenario } from './scenarios/redis-outage.js';
import { retryBudgetScenario } from './scenarios/retry-budget.js';
import { timeoutHeapScenario } from './scenarios/timeout-heap.js';
import { figureLine, type Scenario, type ScenarioResult } from './shared/scenario.js';

const SCENARIOS: readonly Scenario[] = [
  exactlyOnceScenario,
  postgresOutageScenario,
  postgresHangScenario,
  redisOutageScenario,
  redisHangScenario,
  partitionScenario,
  fuzzScenario,
  retryBudgetScenario,
  timeoutHeapScenario,
];

function parseArgs(argv: readonly string[]): { only?: Set<string> } {
  const known = SCENARIOS.map((scenario) => scenario.id);
  let only: Set<string> | undefined;
  for (const arg of argv) {
    const match = /^--only=(.+)$/.exec(arg);
    if (!match) throw new Error(`Unknown argument "${arg}". Use --only=${known.join(',')} (any of them).`);
    only = new Set(match[1]!.split(',').map((id) => id.trim()));
    for (const id of only) if (!known.includes(id)) throw new Error(`Unknown scenario "${id}". Known scenarios: ${known.join(', ')}.`);
  }
  return { only };
}

async function main(): Promise<number> {
  const { only } = parseArgs(process.argv.slice(2));
  // The servers share the two cores with PostgreSQL and the load: no CPU pinning here.
  process.env.BENCH_PIN ??= '0';
  const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
  const selected = SCENARIOS.filter((scenario) => !only || only.has(scenario.id));
  const results: ScenarioResult[] = [];
  const startedAll = Date.now();
  console.log(`chaos: ${selected.map((s) => s.id).join(', ')} (seed ${seed}; CHAOS_SEED=${seed} repeats the generated inputs)`);
  for (const scenario of selected) {
    console.log(`\n▶ ${scenario.id}: ${scenario.title}`);
    const started = Date.now();
    let result: ScenarioResult;
    try {
      const verdict = await scenario.run({ log: (line) => console.log(`  ${line}`), seed, env: process.env });
      result = { id: scenario.id, title: scenario.title, seconds: (Date.now() - started) / 1000, ...verdict };
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.log(`  the scenario crashed: ${message}`);
      result = {
        id: scenario.id,
        title: scenario.title,
        seconds: (Date.now() - started) / 1000,
        figure: `no figure: the scenario crashed (${message.split('\n')[0]})`,
        threshold: 'the scenario runs to the end',
        pass: false,
      };
    }
    results.push(result);
    console.log(figureLine(result));
  }
  const failed = results.filter((result) => !result.pass);
  const skipped = results.filter((result) => result.skipped);
  const seconds = (Date.now() - startedAll) / 1000;
  console.log(`\nchaos summary (${seconds.toFixed(0)} s):`);
  for (const result of results) console.log(figureLine(result));
  const file = writeResults({ environment: environment(), seed, seconds, results });
  if (skipped.length > 0) {
    const bar = '!'.repeat(78);
    console.log(`\n${bar}\nSKIPPED: ${skipped.map((result) => `${result.id} (${result.figure.replace(/^SKIPPED: /, '')})`).join('; ')}${failed.some((result) => result.skipped) ? '\nCI=true: a skip is a failure.' : ''}\n${bar}`);
  }
  const passed = results.filter((result) => result.pass && !result.skipped).length;
  console.log(`\n${passed} passed, ${failed.length} failed${skipped.length > 0 ? `, ${skipped.length} skipped` : ''} (figures in ${file})`);
  return failed.length === 0 ? 0 : 1;
}

function writeResults(data: unknown): string {
  const dir = join(packageRoot(), 'chaos', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'last-run.json');
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  },
);
