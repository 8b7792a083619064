// The code the docs show (docs/snippets/, included verbatim by the Markdown: docs.spec.ts checks
// that) compiles against the built package, and the example app runs as the docs tell users to run
// it: the complete app of README.md and docs/getting-started.md replays a duplicate POST, and its
// Redis versions (docs/stores.md, docs/shared-state.md; node-redis and ioredis clients) stay up
// while Redis is killed, answer 503 where they need Redis, and serve again once it is back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/postgres.mjs';
import { findRedisServer } from '../../scripts/redis.mjs';
import { startOwnRedis } from '../support/redis.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const built = join(root, 'build/docs-snippets');
const appDir = join(built, 'app/src');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const redisServer = findRedisServer();

/** Throws unless dist/ is newer than every library source: the snippets compile against it. */
function requireFreshDist(): void {
  const newest = (dir: string): number =>
    Math.max(...readdirSync(dir).map((name) => (statSync(join(dir, name)).isDirectory() ? newest(join(dir, name)) : name.endsWith('.ts') && !name.endsWith('.spec.ts') ? statSync(join(dir, name)).mtimeMs : 0)));
  const dist = join(root, 'dist/index.js');
  if (!existsSync(dist) || statSync(dist).mtimeMs < newest(join(root, 'lib'))) {
    throw new Error('dist/ is missing or older than lib/: run `npm run build` first (`npm test` does it).');
  }
}

/** One started copy of the example app (`node main.js`), with everything it printed. */
interface RunningApp {
  readonly url: string;
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Runs `dir/main.js` (the docs' main.ts, compiled) on a free port and waits until it answers. */
async function startApp(dir: string, env: Record<string, string> = {}): Promise<RunningApp> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(dir, 'main.js')], { cwd: dir, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the app exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the app did not answer within 30 s:\n${output}`);
    const answered = await fetch(`${url}/`).then(() => true, () => false);
    if (answered) break;
    await sleep(100);
  }
  return {
    url,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM'); // enableShutdownHooks(): Nest closes the app, then ends the process
      const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(forced);
    },
  };
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** POST /payments with `key`, as the getting-started guide's curl does. */
async function pay(url: string, key: string): Promise<{ status: number; replayed: string | null; body: any }> {
  const response = await fetch(`${url}/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ amount: 1000, currency: 'EUR' }),
  });
  return { status: response.status, replayed: response.headers.get('idempotent-replayed'), body: await response.json() };
}

/** Polls `probe` until it returns true; fails after `ms`, or at once when `app` has exited. */
async function eventually(app: RunningApp, what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (app.child.exitCode !== null || app.child.signalCode !== null) {
      throw new Error(`the app exited (${app.child.exitCode ?? app.child.signalCode}) while waiting for ${what}:\n${app.output().slice(-3_000)}`);
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(200);
  }
}

/**
 * A copy of the compiled example app where `app.module.js` is the given version of it and, for
 * ioredis, `redis.client.js` is `ioredis.client.js`: what the guides tell users to swap in.
 */
function appVersion(name: string, module: string, client: 'node-redis' | 'ioredis'): string {
  const dir = join(built, 'runs', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(appDir, dir, { recursive: true });
  copyFileSync(join(appDir, `app.module.${module}.js`), join(dir, 'app.module.js'));
  if (client === 'ioredis') copyFileSync(join(appDir, 'ioredis.client.js'), join(dir, 'redis.client.js'));
  return dir;
}

describe('the docs\' code', () => {
  let compiled: { status: number | null; output: string };

  beforeAll(() => {
    requireFreshDist();
    rmSync(built, { recursive: true, force: true });
    const run = spawnSync(process.execPath, [tsc, '-p', join(root, 'docs/snippets/tsconfig.json')], { cwd: root, encoding: 'utf8' });
    compiled = { status: run.status, output: `${run.stdout}${run.stderr}` };
  }, 120_000);

  afterAll(() => rmSync(built, { recursive: true, force: true }));

  it('compiles against the built package with the getting-started tsconfig (TypeScript 6)', () => {
    expect(compiled.output).toBe('');
    expect(compiled.status).toBe(0);
  });

  it('the complete app (README, getting started) answers a duplicate POST with the stored response', async () => {
    const app = await startApp(appDir);
    try {
      const first = await pay(app.url, 'order-42');
      const second = await pay(app.url, 'order-42');
      expect(first).toMatchObject({ status: 201, replayed: null, body: { status: 'accepted', amount: 1000, currency: 'EUR' } });
      expect(second).toEqual({ status: 201, replayed: 'true', body: first.body });
    } finally {
      await app.stop();
    }
  }, 60_000);

  describe.skipIf(!redisServer)('its Redis versions, with Redis killed under them', () => {
    let rates: Server;
    let ratesUrl: string;

    beforeAll(async () => {
      // the exchange-rates upstream of RatesController
      rates = createServer((request, response) => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ currency: request.url?.split('/').pop(), rate: 1.08 }));
      });
      await new Promise<void>((done) => rates.listen(0, '127.0.0.1', done));
      ratesUrl = `http://127.0.0.1:${(rates.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((done) => rates.close(() => done())));

    const versions = [
      { module: 'redis', client: 'node-redis' },
      { module: 'redis', client: 'ioredis' },
      { module: 'shared-state', client: 'node-redis' },
      { module: 'shared-state', client: 'ioredis' },
    ] as const;

    it.each(versions)('the $module version on $client: stays up and answers 503 while Redis is down, serves again once it is back', async ({ module, client }) => {
      const redis = await startOwnRedis();
      const dir = appVersion(`${module}-${client}`, module, client);
      const app = await startApp(dir, { REDIS_URL: redis.url, RATES_URL: ratesUrl });
      const alive = () => expect(app.child.exitCode, `the app exited:\n${app.output()}`).toBeNull();
      try {
        const before = await pay(app.url, 'before-outage');
        expect(before.status).toBe(201);
        if (module === 'shared-state') expect((await fetch(`${app.url}/rates/EUR`)).status).toBe(200);

        await redis.kill();
        // a command fails at once: 503 problem+json, the handler not run
        await eventually(app, 'a 503 while Redis is down', async () => (await pay(app.url, `during-outage-${Date.now()}`)).status === 503, 5_000);
        const during = await pay(app.url, 'during-outage');
        expect(during.status).toBe(503);
        expect(during.body.code).toMatch(/^idempotency_store_(unavailable|timeout)$/);
        // the clients' reconnection attempts fail meanwhile: each one an 'error' event
        await sleep(1_500);
        alive();
        if (module === 'shared-state') {
          // the shared breaker falls back to in-process state: the route keeps answering
          expect((await fetch(`${app.url}/rates/EUR`)).status).toBe(200);
          await eventually(app, 'the shared_state_unavailable event', async () => app.output().includes('shared_state_unavailable'), 5_000);
        }
        alive();

        await redis.start(); // the same port, empty
        await eventually(app, 'a payment once Redis is back', async () => (await pay(app.url, `after-outage-${Date.now()}`)).status === 201);
        const again = await pay(app.url, 'after-outage');
        expect(again.status).toBe(201);
        expect(await pay(app.url, 'after-outage')).toEqual({ status: 201, replayed: 'true', body: again.body });
        if (module === 'shared-state') await eventually(app, 'the shared_state_recovered event', async () => app.output().includes('shared_state_recovered'));
        alive();
      } finally {
        await app.stop();
        await redis.stop();
      }
    }, 90_000);
  });
});
