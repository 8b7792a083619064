// Throwaway Redis (or Valkey) for tests: `redis-server` in a temp dir on a free loopback port,
// nothing persisted. Used by scripts/test.mjs and by tests that stop and restart a server of their own.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './postgres.mjs';

const SERVER_NAMES = ['redis-server', 'valkey-server'];
const START_TIMEOUT_MS = 10_000;

/** Path of `redis-server` (or `valkey-server`), or undefined when neither is installed. */
export function findRedisServer() {
  if (process.env.REDIS_SERVER && existsSync(process.env.REDIS_SERVER)) return process.env.REDIS_SERVER;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/local/bin', '/usr/sbin'];
  for (const name of SERVER_NAMES) {
    for (const dir of dirs) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/** Sends PING on the server's Unix socket; resolves true on +PONG. */
function ping(path) {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

async function waitUntil(check, what) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`redis-server did not ${what} within ${START_TIMEOUT_MS} ms.`);
}

/**
 * Starts a fresh server. Returns { url, port, dir, socket, start(), halt(), kill(), stop(), freeze(), thaw() }:
 * `halt()` stops it (an outage), `start()` brings it back on the same port (empty: nothing is
 * persisted), `stop()` stops it for good and deletes its directory. All return promises.
 * `freeze()` stops the server process with SIGSTOP (it hangs with its connections open) and
 * `thaw()` resumes it with SIGCONT. `netns` runs it inside that network namespace (root only),
 * bound to `bindAddress` there; `socket` (a Unix socket in `dir`) reaches it from outside.
 * `args` are extra server options (`['--maxmemory-policy', 'allkeys-lru']`).
 */
export async function startRedis({ bin = findRedisServer(), port, netns, bindAddress = '127.0.0.1', args: extraArgs = [] } = {}) {
  if (!bin) throw new Error('redis-server was not found. Install it with `apt-get install -y --no-upgrade redis-server` or set REDIS_URL.');
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nest-resilience-redis-'));
  const socket = join(dir, 'redis.sock');
  const args = ['--port', String(port), '--bind', bindAddress, '--unixsocket', socket, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--logfile', join(dir, 'server.log'), ...extraArgs];
  let child;
  let frozen = false;
  const start = async () => {
    if (child) return;
    // `ip netns exec` execs the server in place: the child's pid is the server's
    const started = netns ? spawn('ip', ['netns', 'exec', netns, bin, ...args], { stdio: 'ignore' }) : spawn(bin, args, { stdio: 'ignore' });
    child = started;
    started.once('exit', () => {
      if (child === started) child = undefined;
    });
    await waitUntil(() => ping(socket), 'answer PING');
  };
  const halt = async (signal = 'SIGTERM') => {
    const running = child;
    if (!running) return;
    child = undefined;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    if (frozen) running.kill('SIGCONT');
    frozen = false;
    running.kill(signal);
    await exited;
  };
  await start();
  return {
    port,
    dir,
    url: `redis://${bindAddress}:${port}`,
    socket,
    start,
    freeze() {
      if (!child) throw new Error('redis-server is not running');
      child.kill('SIGSTOP');
      frozen = true;
      return [child.pid];
    },
    thaw() {
      if (child && frozen) child.kill('SIGCONT');
      frozen = false;
    },
    halt: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async stop() {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
