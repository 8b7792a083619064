// Throwaway RabbitMQ for tests: a node of its own (own name, own Erlang port mapper, own data dir,
// no plugins) on free loopback ports, stopped and deleted afterwards. RabbitMQ is an Erlang
// application and boots slowly on a small machine; `startRabbitMq` reports how long it took.
// Used by scripts/test.mjs and by tests that kill or restart a broker of their own.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './postgres.mjs';
import { findExecutable, listening, waitUntil } from './server-process.mjs';

/** How long a boot may take before it counts as failed (measured: 8–60 s wall, 5–6 s CPU, on 2 cores shared at load 8–22). */
export const RABBITMQ_START_TIMEOUT_MS = 180_000;

/** Path of the broker's own start script (not the Debian wrapper, which switches to the `rabbitmq` user). */
export function findRabbitMqServer() {
  return findExecutable(['rabbitmq-server'], { envVar: 'RABBITMQ_SERVER', firstDirs: ['/usr/lib/rabbitmq/bin'] });
}

/** `epmd` (Erlang's port mapper), next to `erl`. */
function findEpmd() {
  return findExecutable(['epmd'], { extraDirs: ['/usr/bin', '/usr/lib/erlang/bin'] });
}

/** Opens an AMQP 0-9-1 connection far enough to get `connection.start` (a method frame): the broker accepts clients. */
function amqpReady(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1])));
    socket.once('data', (data) => done(data[0] === 1));
  });
}

/** Stops a process group and waits for its leader to exit. */
async function stopGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    // the start script runs the Erlang VM as its child: signal the whole group so nothing is left behind
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
  await exited;
}

/**
 * Starts a fresh broker. Returns { url, port, dir, startMs, start(), halt(), kill(), stop() }:
 * `startMs` is how long the boot took (until a client could open a connection); `halt()` stops it
 * (an outage), `kill()` kills it (SIGKILL); `start()` brings it back on the same port with the same
 * data (durable queues and their messages survive); `stop()` stops it for good and deletes its
 * directory. All return promises. The broker runs as the current user (root included), with the
 * default `guest` account, which RabbitMQ only admits from loopback.
 */
export async function startRabbitMq({ bin = findRabbitMqServer(), port, timeoutMs = RABBITMQ_START_TIMEOUT_MS } = {}) {
  if (!bin) throw new Error('rabbitmq-server was not found. Install it with `apt-get install -y --no-upgrade rabbitmq-server` or set AMQP_URL.');
  const epmd = findEpmd();
  if (!epmd) throw new Error('epmd (Erlang) was not found next to rabbitmq-server. Reinstall it with `apt-get install -y --no-upgrade rabbitmq-server` or set AMQP_URL.');
  port ??= await freePort();
  const distPort = await freePort();
  const epmdPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nest-resilience-rabbitmq-'));
  const log = join(dir, 'server.log');
  writeFileSync(join(dir, 'rabbitmq.conf'), [`listeners.tcp.default = 127.0.0.1:${port}`, 'log.file = false', 'log.console = true', 'log.console.level = warning', ''].join('\n'));
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  mkdirSync(join(dir, 'home'));
  const env = {
    ...process.env,
    // the Erlang cookie lives in HOME: a fresh one per broker
    HOME: join(dir, 'home'),
    RABBITMQ_NODENAME: `nest-resilience-${randomBytes(4).toString('hex')}@localhost`,
    RABBITMQ_USE_LONGNAME: 'false',
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    // its own port mapper, so nothing outlives the broker and no other node on the machine is touched
    ERL_EPMD_PORT: String(epmdPort),
    // do not spin idle schedulers: the machine is shared
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '+sbwt none +sbwtdcpu none +sbwtdio none',
  };
  let mapper;
  let child;
  const start = async () => {
    if (child) return;
    const began = Date.now();
    if (!mapper || mapper.exitCode !== null) {
      mapper = spawn(epmd, ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore', env });
      await waitUntil(() => listening(epmdPort), { timeoutMs: 10_000, what: `epmd did not listen on port ${epmdPort}` });
    }
    const out = openSync(log, 'a');
    const started = spawn(bin, [], { stdio: ['ignore', out, out], env, detached: true, cwd: dir });
    closeSync(out);
    child = started;
    started.once('exit', () => {
      if (child === started) child = undefined;
    });
    await waitUntil(
      async () => {
        if (child !== started) throw new Error(`rabbitmq-server exited during start-up; see ${log}.`);
        return amqpReady(port);
      },
      { timeoutMs, intervalMs: 50, what: `rabbitmq-server did not accept AMQP connections on port ${port} (log: ${log})` },
    );
    return Date.now() - began;
  };
  const halt = async (signal) => {
    const running = child;
    if (!running) return;
    child = undefined;
    await stopGroup(running, signal);
  };
  let startMs;
  try {
    startMs = await start();
  } catch (error) {
    await halt('SIGKILL');
    if (mapper) await stopGroup(mapper, 'SIGTERM');
    throw error;
  }
  return {
    port,
    dir,
    startMs,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    start,
    halt: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async stop() {
      await halt('SIGTERM');
      if (mapper) await stopGroup(mapper, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// `node scripts/rabbitmq.mjs`: boots one broker, prints how long it took, stops it.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const broker = await startRabbitMq();
  console.log(`rabbitmq-server accepted AMQP connections ${broker.startMs} ms after start (${broker.url}, ${dirname(broker.dir)}).`);
  const began = Date.now();
  await broker.stop();
  console.log(`stopped in ${Date.now() - began} ms.`);
}
