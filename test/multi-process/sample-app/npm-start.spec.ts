// `npm start`'s process (build/sample-app/main.js) on its own, as a new machine runs it: with no
// REDIS_URL / NATS_URL it starts throwaway redis-server and nats-server, and a SIGTERM or a Ctrl-C
// (SIGINT) stops them with the app; with the binaries hidden (a PATH without them) it logs the one
// fallback line and still serves reports. The e2e suite covers what the consumers do
// (test/e2e/sample-app/sample-app.consumers.e2e-spec.ts); this covers the process and its signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findServerBinary } from '../../../sample-app/brokers/sample-brokers.js';
import { freePort } from '../../../scripts/postgres.mjs';
import { requireBuilt } from '../../fixtures/spawn-app.js';
import { listening } from '../../support/net.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(root, 'build/sample-app/main.js');
const haveServers = Boolean(
  findServerBinary({ binVar: 'REDIS_SERVER', names: ['redis-server', 'valkey-server'] }, process.env) &&
    findServerBinary({ binVar: 'NATS_SERVER', names: ['nats-server'] }, process.env),
);
if (!haveServers) console.warn('SKIPPED npm start with its own redis-server and nats-server: a binary is not installed.');

interface Started {
  child: ChildProcess;
  output: () => string;
  /** The `msg` of every JSON log line so far. */
  messages: () => string[];
  base: string;
}

/** Runs main.js like `npm start` after its build, and waits for its "Sample app on" line. */
async function startMain(dir: string, path: string | undefined): Promise<Started> {
  requireBuilt([[MAIN, join(root, 'sample-app/main.ts')], [join(root, 'build/sample-app/start-sample.js'), join(root, 'sample-app/start-sample.ts')]]);
  const env: NodeJS.ProcessEnv = { PATH: path, PORT: '0', MODEL_PORT: String(await freePort()), SQLITE_FILE: join(dir, `${Date.now()}.sqlite`), LOG_LEVEL: 'info' };
  if (path === process.env.PATH) {
    for (const name of ['REDIS_SERVER', 'NATS_SERVER'] as const) if (process.env[name]) env[name] = process.env[name];
  }
  const child = spawn(process.execPath, [MAIN], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const messages = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => String((JSON.parse(line) as { msg?: unknown }).msg));
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ready = messages().find((message) => message.startsWith('Sample app on '));
    if (ready) return { child, output: () => output, messages, base: /^Sample app on (\S+) /.exec(ready)![1]! };
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`main.js did not start (exit ${child.exitCode}):\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stop(started: Started, signal: NodeJS.Signals): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  started.child.kill(signal);
  return exited;
}

/** POSTs a report and polls it until it is no longer `processing`; returns its status. */
async function reportRoundTrip(base: string): Promise<string> {
  const headers = { 'content-type': 'application/json', 'x-account-id': 'acme', 'idempotency-key': `start-${Date.now()}` };
  const accepted = await fetch(`${base}/reports`, { method: 'POST', headers, body: JSON.stringify({ topic: 'tides' }) });
  expect(accepted.status).toBe(202);
  const { id } = (await accepted.json()) as { id: string };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const report = (await (await fetch(`${base}/reports/${id}`, { headers: { 'x-account-id': 'acme' } })).json()) as { status: string };
    if (report.status !== 'processing' || Date.now() > deadline) return report.status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('npm start (build/sample-app/main.js)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sample-npm-start-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it.skipIf(!haveServers)(`starts its own redis-server and nats-server and stops them on ${signal}`, async () => {
      const started = await startMain(dir, process.env.PATH);
      const announced = started.messages().find((message) => message.startsWith('Sample app on '))!;
      const urls = [/throwaway redis-server on (redis:\/\/\S+?),/.exec(announced)?.[1], /throwaway nats-server on (nats:\/\/\S+?)\)/.exec(announced)?.[1]];
      expect(urls, announced).toEqual([expect.stringMatching(/^redis:/), expect.stringMatching(/^nats:/)]);
      const ports = urls.map((url) => Number(new URL(url!).port));
      expect(await Promise.all(ports.map(listening))).toEqual([true, true]);
      const info = (await (await fetch(started.base)).json()) as Record<string, unknown>;
      expect(info).toMatchObject({ reportJobs: 'bullmq', reportReadyEvents: 'nats' });
      // the default model fails 30 % of calls: the report completes after its retries
      expect(await reportRoundTrip(started.base)).toBe('completed');

      expect(await stop(started, signal)).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(await Promise.all(ports.map(listening))).toEqual([false, false]);
      expect(started.messages().filter((message) => /not found|did not start/.test(message))).toEqual([]);
    }, 120_000);
  }

  it('without the binaries, logs one line naming them and the fallback, and still serves reports', async () => {
    const started = await startMain(dir, dirname(process.execPath));
    const fallback = started.messages().filter((message) => message.includes('not found'));
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).toMatch(/^redis-server not found .*; nats-server not found .*: reports are generated in process instead of as BullMQ jobs, and "report ready" events are recorded directly/);
    const info = (await (await fetch(started.base)).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ reportJobs: 'in-process', reportReadyEvents: 'direct' });
    expect(await reportRoundTrip(started.base)).toBe('completed');
    expect(await stop(started, 'SIGTERM')).toBe(143);
  }, 120_000);
});
