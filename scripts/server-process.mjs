// Shared by the throwaway brokers of scripts/nats.mjs and scripts/rabbitmq.mjs: finding a server
// binary and waiting for it to answer.
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/**
 * `$envVar` (an exact path) when it exists, else the first of `names` found in `firstDirs`, then
 * on PATH, then in `extraDirs`; undefined when none is installed.
 */
export function findExecutable(names, { envVar, firstDirs = [], extraDirs = [] } = {}) {
  const configured = envVar ? process.env[envVar] : undefined;
  if (configured && existsSync(configured)) return configured;
  const dirs = [...firstDirs, ...(process.env.PATH ?? '').split(':'), ...extraDirs];
  for (const name of names) {
    for (const dir of dirs) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/** Polls `check` (async, may throw to stop) every `intervalMs` until it answers true; throws `${what}` after `timeoutMs`. */
export async function waitUntil(check, { timeoutMs, intervalMs = 20, what }) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`${what} within ${timeoutMs} ms.`);
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (a server expected up, or stopped). */
export function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
