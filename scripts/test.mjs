// `npm test`: runs the vitest projects (all of them, or those named with `--project`), after
// building and starting what they need: a throwaway PostgreSQL unless DATABASE_URL is set, a
// throwaway redis-server unless REDIS_URL is set, a nats-server with JetStream unless NATS_URL is
// set, a RabbitMQ node unless AMQP_URL is set, dist/ and build/. Stops them all and ends with the
// plain line `N passed, N failed`. Extra arguments go to vitest. vitest runs on the Node that runs
// this script (through npm, the pinned one: see scripts/node-runtime/check.mjs), which it names
// first and last.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { nodeRuntime, unsupportedMessage } from './node-runtime/check.mjs';
import { findPostgresBin, startPostgres } from './postgres.mjs';
import { findNatsServer, startNats } from './nats.mjs';
import { findRabbitMqServer, startRabbitMq } from './rabbitmq.mjs';
import { findRedisServer, startRedis } from './redis.mjs';
import { summarizeVitestReport } from './vitest-summary.mjs';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const extraArgs = process.argv.slice(2);

/**
 * What each vitest project (vitest.config.ts) needs before it runs. `build`: the npm script that
 * produces its files (`build` writes dist/, `build:sample` dist/ and build/, where the compiled
 * fixtures live); `servers`: PostgreSQL and Redis (its tests skip loudly without them); `brokers`:
 * NATS and RabbitMQ (the message-context tests). `docs` compiles the snippets against dist/ and
 * packs it; its outage test starts its own redis-server.
 */
const PREREQUISITES = {
  unit: { build: undefined, servers: false, brokers: false },
  e2e: { build: undefined, servers: true, brokers: true },
  'multi-process': { build: 'build:sample', servers: true, brokers: false },
  package: { build: 'build', servers: false, brokers: false },
  tooling: { build: undefined, servers: false, brokers: false },
  // flood tests of every per-key structure (heap after GC); the shared-state one needs Redis
  bounds: { build: undefined, servers: true, brokers: false },
  docs: { build: 'build', servers: false, brokers: false },
};
const env = { ...process.env };
let postgres;
let redis;
let nats;
let rabbitmq;

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
const needsBrokers = needs.some((need) => need.brokers);

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

/** Runs a command with inherited output; resolves to its exit status (the event loop stays free meanwhile). */
function runCommand(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit' });
    child.once('error', () => resolve(1));
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

// Interrupted: stop the servers (RabbitMQ runs in a process group of its own, which a terminal's
// Ctrl-C does not reach) before exiting.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void stopServers().finally(() => process.exit(130));
  });
}

// RabbitMQ takes seconds to boot on a small machine (an Erlang VM): it boots while the build runs.
const rabbitMqServer = !needsBrokers || env.AMQP_URL ? undefined : findRabbitMqServer();
const rabbitMqStarting = rabbitMqServer
  ? startRabbitMq({ bin: rabbitMqServer }).then(
      (broker) => (rabbitmq = broker),
      (error) => error,
    )
  : undefined;

if (buildScript) {
  const build = await runCommand('npm', ['run', '--silent', buildScript]);
  if (build !== 0) {
    await stopServers();
    console.log('0 passed, 1 failed');
    process.exit(build);
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
    if (ci) await failEarly();
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
    if (ci) await failEarly();
  }
}

if (needsBrokers && !env.NATS_URL) {
  const natsServer = findNatsServer();
  if (natsServer) {
    nats = await startNats({ bin: natsServer });
    env.NATS_URL = nats.url;
    env.NATS_SERVER = natsServer;
    console.log(`Started a throwaway nats-server with JetStream on port ${nats.port} (${nats.dir}).`);
  } else {
    loud('nats-server was not found and NATS_URL is not set: the NATS tests are SKIPPED.\nInstall it (`apt-get install -y --no-upgrade nats-server`) or set NATS_URL to run them.');
    if (ci) await failEarly();
  }
}

if (needsBrokers && !env.AMQP_URL) {
  if (rabbitMqStarting) {
    const started = await rabbitMqStarting;
    if (started instanceof Error) {
      loud(`rabbitmq-server did not start: ${started.message}\nThe RabbitMQ tests are SKIPPED. Set AMQP_URL to run them against a broker of your own.`);
      if (ci) await failEarly();
    } else {
      env.AMQP_URL = rabbitmq.url;
      env.RABBITMQ_SERVER = rabbitMqServer;
      console.log(`Started a throwaway RabbitMQ on port ${rabbitmq.port} in ${rabbitmq.startMs} ms (${rabbitmq.dir}).`);
    }
  } else {
    loud('rabbitmq-server was not found and AMQP_URL is not set: the RabbitMQ tests are SKIPPED.\nInstall it (`apt-get install -y --no-upgrade rabbitmq-server`) or set AMQP_URL to run them.');
    if (ci) await failEarly();
  }
}

/** Stops every server started so far (each once). */
async function stopServers() {
  const [pg, rd, nt] = [postgres, redis, nats];
  postgres = redis = nats = undefined;
  pg?.stop();
  await rd?.stop();
  await nt?.stop();
  await rabbitMqStarting;
  const rb = rabbitmq;
  rabbitmq = undefined;
  await rb?.stop();
}

/** Stops every server started so far and exits as a failed run (a skip under CI=true). */
async function failEarly() {
  await stopServers();
  console.log('0 passed, 1 failed');
  process.exit(1);
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
  await stopServers();
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
if (needsBrokers && !env.NATS_URL) loud('Reminder: the NATS tests were SKIPPED (no nats-server, no NATS_URL).');
if (needsBrokers && !env.AMQP_URL) loud('Reminder: the RabbitMQ tests were SKIPPED (no rabbitmq-server that started, no AMQP_URL).');
if (ci && skipped > 0) {
  loud(`${skipped} tests were skipped; with CI=true a skipped test is a failure.`);
  failed += skipped;
  status = status || 1;
}
console.log(`Ran on ${runtime.summary}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(status !== 0 ? status : failed > 0 ? 1 : 0);
