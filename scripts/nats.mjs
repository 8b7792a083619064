// Throwaway NATS for tests: `nats-server` with JetStream on, in a temp dir on a free loopback
// port. Used by scripts/test.mjs and by tests that stop, kill or restart a server of their own.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './postgres.mjs';
import { findExecutable, waitUntil } from './server-process.mjs';

const START_TIMEOUT_MS = 15_000;

/** Path of `nats-server`, or undefined when it is not installed. */
export function findNatsServer() {
  return findExecutable(['nats-server'], { envVar: 'NATS_SERVER', extraDirs: ['/usr/sbin', '/usr/bin', '/usr/local/bin'] });
}

/**
 * Reads the server's INFO line; resolves true when it announces JetStream (the server only sends
 * INFO once its listener is up, and only says `"jetstream":true` once JetStream is enabled).
 */
function jetStreamReady(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (data) => {
      received += data.toString();
      const end = received.indexOf('\r\n');
      if (end === -1) return;
      const line = received.slice(0, end);
      done(line.startsWith('INFO ') && /"jetstream"\s*:\s*true/.test(line));
    });
  });
}

/**
 * Starts a fresh server with JetStream. Returns { url, port, dir, start(), halt(), kill(), stop() }:
 * `halt()` stops it (an outage), `kill()` kills it (SIGKILL), `start()` brings it back on the same
 * port with the same JetStream store (streams and unacknowledged messages survive, as on a real
 * restart), `stop()` stops it for good and deletes its directory. All return promises.
 */
export async function startNats({ bin = findNatsServer(), port } = {}) {
  if (!bin) throw new Error('nats-server was not found. Install it with `apt-get install -y --no-upgrade nats-server` or set NATS_URL.');
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nest-resilience-nats-'));
  // no monitoring port, no cluster: only the client port, on loopback
  const args = ['--addr', '127.0.0.1', '--port', String(port), '--jetstream', '--store_dir', join(dir, 'jetstream'), '--log', join(dir, 'server.log')];
  let child;
  const start = async () => {
    if (child) return;
    const started = spawn(bin, args, { stdio: 'ignore' });
    child = started;
    started.once('exit', () => {
      if (child === started) child = undefined;
    });
    await waitUntil(() => jetStreamReady(port), { timeoutMs: START_TIMEOUT_MS, what: 'nats-server did not announce JetStream' });
  };
  const halt = async (signal) => {
    const running = child;
    if (!running) return;
    child = undefined;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  await start();
  return {
    port,
    dir,
    url: `nats://127.0.0.1:${port}`,
    start,
    halt: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async stop() {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
