// `npm test`: runs the vitest projects (all of them, or those named with `--project`), after
// building and starting what they need: a throwaway PostgreSQL unless DATABASE_URL is set and a
// throwaway redis-server unless REDIS_URL is set, dist/ and build/. Stops both servers and ends
// with the plain line `N passed, N failed`. Extra arguments go to vitest. vitest runs on the Node that
// runs this script (through npm, the pinned one: see scripts/node-runtime/check.mjs), which it names
// first and last.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { nodeRuntime, unsupportedMessage } from './node-runtime/check.mjs';
import { findPostgresBin, startPostgres } from './postgres.mjs';
import { findRedisServer, startRedis } from './redis.mjs';
import { summarizeVitestReport } from './vitest-summary.mjs';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const extraArgs = process.argv.slice(2);

/**
 * What each vitest project (vitest.config.ts) needs before it runs. `build`: the npm script that
 * produces its files (`build` writes dist/, `build:sample` dist/ and build/, where the compiled
 * fixtures live); `servers`: PostgreSQL and Redis (its tests skip loudly without them).
 */
const PREREQUISITES = {
  unit: { build: undefined, servers: false },
  e2e: { build: undefined, servers: true },
  'multi-process': { build: 'build:sample', servers: true },
  package: { build: 'build', servers: false },
  tooling: { build: undefined, servers: false },
  // flood tests of every per-key structure (heap after GC); the shared-state one needs Redis
  bounds: { build: undefined, servers: true },
};
const env = { ...process.env };
let postgres;
let redis;

function loud(message) {
  const bar = '!'.repeat(78);
  console.error(`\n${bar}\n${message}\n${bar}\n`);
}

const runtime = nodeRuntime();
if (!runtime.supported) {
  console.error(unsupportedMessage(runtime));
  console.log('0 passed, 1 failed');
  process.exit(1);
}
console.log(`Running the suite on ${runtime.summary}`);

const projects = selectedProjects(extraArgs);
const needs = projects.map((name) => PREREQUISITES[name]);
const buildScript = needs.some((need) => need.build === 'build:sample') ? 'build:sample' : needs.some((need) => need.build === 'build') ? 'build' : undefined;
const needsServers = needs.some((need) => need.servers);

/** The projects named with `--project name` / `--project=name`, or every project. */
function selectedProjects(args) {
  const named = [];
  args.forEach((arg, index) => {
    if (arg === '--project') named.push(args[index + 1]);
    else if (arg.startsWith('--project=')) named.push(arg.slice('--project='.length));
  });
  const unknown = named.filter((name) => !(name in PREREQUISITES));
  if (unknown.length > 0) {
    console.error(`Unknown vitest project ${unknown.join(', ')}: the projects are ${Object.keys(PREREQUISITES).join(', ')}.`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  return named.length > 0 ? named : Object.keys(PREREQUISITES);
}

if (buildScript) {
  const build = spawnSync('npm', ['run', '--silent', buildScript], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.log('0 passed, 1 failed');
    process.exit(build.status ?? 1);
  }
}

if (needsServers && !env.DATABASE_URL) {
  if (findPostgresBin()) {
    postgres = await startPostgres();
    env.DATABASE_URL = postgres.url;
    env.PG_BIN = findPostgresBin();
    console.log(`Started a throwaway PostgreSQL on port ${postgres.port} (${postgres.dir}).`);
  } else {
    loud('PostgreSQL binaries were not found and DATABASE_URL is not set: the PostgreSQL tests are SKIPPED.\nInstall PostgreSQL (`apt-get install -y --no-upgrade postgresql`) or set DATABASE_URL to run them.');
    if (ci) {
      console.log('0 passed, 1 failed');
      process.exit(1);
    }
  }
}

if (needsServers && !env.REDIS_URL) {
  const redisServer = findRedisServer();
  if (redisServer) {
    redis = await startRedis({ bin: redisServer });
    env.REDIS_URL = redis.url;
    env.REDIS_SERVER = redisServer;
    console.log(`Started a throwaway Redis on port ${redis.port} (${redis.dir}).`);
  } else {
    loud('redis-server was not found and REDIS_URL is not set: the Redis tests are SKIPPED.\nInstall it (`apt-get install -y --no-upgrade redis-server`) or set REDIS_URL to run them.');
    if (ci) {
      stopPostgres();
      console.log('0 passed, 1 failed');
      process.exit(1);
    }
  }
}

function stopPostgres() {
  postgres?.stop();
  postgres = undefined;
}

const report = join(tmpdir(), `nest-resilience-vitest-${process.pid}.json`);
let status = 1;
try {
  // vitest's own bin on this process's Node: `npx vitest` would put node_modules/.bin first on PATH
  // and so run the pinned Node even when this script was started on another one (CI's Node 22 run)
  const vitestPackage = createRequire(import.meta.url).resolve('vitest/package.json');
  const vitest = join(dirname(vitestPackage), JSON.parse(readFileSync(vitestPackage, 'utf8')).bin.vitest);
  const run = spawnSync(
    process.execPath,
    [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...extraArgs],
    { stdio: 'inherit', env },
  );
  status = run.status ?? 1;
} finally {
  stopPostgres();
  await redis?.stop();
}

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const summary = summarizeVitestReport(JSON.parse(readFileSync(report, 'utf8')));
  ({ passed, failed, skipped } = summary);
  for (const file of summary.failedFiles) console.error(`Failed outside any test (could not load, or a hook threw): ${file}`);
  rmSync(report, { force: true });
} catch {
  failed = Math.max(failed, 1);
}
if (status !== 0 && failed === 0) {
  loud('vitest failed outside every test (an unhandled error; see above): counted as one failure.');
  failed = 1;
}
if (needsServers && !env.DATABASE_URL) loud('Reminder: the PostgreSQL tests were SKIPPED (no PostgreSQL binaries, no DATABASE_URL).');
if (needsServers && !env.REDIS_URL) loud('Reminder: the Redis tests were SKIPPED (no redis-server, no REDIS_URL).');
if (ci && skipped > 0) {
  loud(`${skipped} tests were skipped; with CI=true a skipped test is a failure.`);
  failed += skipped;
  status = status || 1;
}
console.log(`Ran on ${runtime.summary}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(status !== 0 ? status : failed > 0 ? 1 : 0);
