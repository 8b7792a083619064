// PostgreSQL backend instructions per store statement, counted by valgrind's callgrind: a throwaway
// durable server (fsync, synchronous_commit on) runs under callgrind, and for each statement one
// connection sends it `WARMUP` times and another `WARMUP + CALLS` times, both prepared (named) as
// the store sends them; the difference of the two backends' totals ÷ CALLS is the figure
// (connection start-up and plan caching cancel out). User-space instructions only: the kernel's
// part of a commit (the WAL flush) and of the socket are not counted. Load-independent.
//   npm run build:sample && node build/bench/idempotency/postgres-statement-instructions.js
//   BENCH_CALLS=1000 (default) BENCH_WARMUP=200 (default). Needs valgrind and PostgreSQL binaries.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IdempotencyRecord, TypeOrmIdempotencyStore, type IdempotencyQueryEvent } from 'nest-resilience/typeorm';
import type { IdempotencyClaim } from 'nest-resilience';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { loadPostgresScript } from '../shared/postgres.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 1_000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
const RESPONSE = { status: 201, headers: {}, body: '{"id":1,"item":"book","qty":2,"status":"created"}', bodyEncoding: 'json' as const };

const claimOf = (key: string): IdempotencyClaim => ({ namespace: 'default', scope: '', key, fingerprint: 'f'.repeat(64), method: 'POST', path: '/orders', leaseMs: 30_000, ttlMs: 86_400_000 });

/** The SQL and parameters the store sends for one new key (claim, complete) and one replay, captured through `onQuery` and node-postgres. */
async function captureStatements(url: string): Promise<Record<'claim' | 'complete', { text: string; values: unknown[] }>> {
  const dataSource = await new DataSource({ type: 'postgres', url, entities: [IdempotencyRecord], synchronize: true }).initialize();
  const sent: Array<{ operation: string; text: string; values: unknown[] }> = [];
  let operation = '';
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    const { text, values } = config as { text: string; values: unknown[] };
    if (operation) sent.push({ operation, text, values });
    return (original as (...a: unknown[]) => unknown).call(this, config, ...rest);
  } as typeof original;
  try {
    const store = new TypeOrmIdempotencyStore(dataSource, { onQuery: (event: IdempotencyQueryEvent) => (operation = event.operation) });
    const claimed = await store.claim(claimOf('replay-key'));
    if (claimed.state !== 'acquired') throw new Error(`could not claim the replay key (${claimed.state})`);
    await store.complete(claimed.lease, RESPONSE, 86_400_000);
  } finally {
    pg.Client.prototype.query = original;
    await dataSource.destroy();
  }
  const of = (name: string) => sent.find((statement) => statement.operation === name)!;
  return { claim: of('claim'), complete: of('complete') };
}

/** One connection's run: `count` executions of `step`; answers its backend pid. */
async function session(url: string, count: number, step: (client: pg.Client, index: number) => Promise<void>): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    for (let index = 0; index < count; index++) await step(client, index);
    return rows[0].pid;
  } finally {
    await client.end();
  }
}

function callgrindTotal(dir: string, pid: number): number {
  const text = readFileSync(join(dir, `cg.${pid}`), 'utf8');
  const match = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!match) throw new Error(`no totals in callgrind output of backend ${pid}`);
  return Number(match[1]);
}

async function main(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind is not installed (apt-get install -y valgrind).');
  const { startPostgres, findPostgresBin } = await loadPostgresScript();
  const server = await startPostgres({ durable: true });
  const statements = await captureStatements(server.url);
  server.halt();
  const data = join(server.dir, 'data');
  const owner = statSync(server.dir);
  const asPostgres = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
  const outDir = server.dir;
  const postmaster = spawn(
    'valgrind',
    ['--quiet', '--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${join(outDir, 'cg.%p')}`, join(findPostgresBin()!, 'postgres'),
      '-D', data, '-p', String(server.port), '-k', server.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=on', '-c', 'synchronous_commit=on', '-c', 'autovacuum=off'],
    { ...asPostgres, cwd: server.dir, stdio: 'ignore' },
  );
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await session(server.url, 0, async () => undefined);
        break;
      } catch (error) {
        if (attempt > 120) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    const named = (name: string, statement: { text: string; values: unknown[] }, values: unknown[]) => ({ name, text: statement.text, values });
    const withKey = (values: unknown[], recordId: string, owner: string) => {
      const copy = [...values];
      copy[0] = recordId;
      copy[1] = owner;
      return copy;
    };
    const claimValues = (index: number, prefix: string) => {
      const copy = [...statements.claim.values];
      copy[0] = `${prefix}-${index}-${randomUUID()}`.slice(0, 64);
      copy[5] = randomUUID();
      return copy;
    };
    const variants: Record<string, (client: pg.Client, index: number) => Promise<void>> = {
      'floor: prepared SELECT 1': async (client) => void (await client.query({ name: 'floor', text: 'SELECT 1 AS ok', values: [] })),
      'replay: claim of a completed key': async (client) => void (await client.query(named('claim', statements.claim, statements.claim.values))),
      'new key: claim': async (client, index) => void (await client.query(named('claim', statements.claim, claimValues(index, 'c')))),
      'new key: claim + complete': async (client, index) => {
        const values = claimValues(index, 'n');
        await client.query(named('claim', statements.claim, values));
        await client.query(named('complete', statements.complete, withKey(statements.complete.values, values[0] as string, values[5] as string)));
      },
    };
    const pids: Record<string, [number, number]> = {};
    for (const [name, step] of Object.entries(variants)) {
      pids[name] = [await session(server.url, WARMUP, step), await session(server.url, WARMUP + CALLS, step)];
    }
    postmaster.kill('SIGINT');
    await new Promise((resolve) => postmaster.once('exit', resolve));
    console.log(`PostgreSQL backend instructions per call (callgrind, user space; ${CALLS} calls after ${WARMUP}, durable server)\n`);
    console.log('| statement | instructions |\n| --- | --- |');
    for (const [name, [short, long]] of Object.entries(pids)) {
      const perCall = (callgrindTotal(outDir, long) - callgrindTotal(outDir, short)) / CALLS;
      console.log(`| ${name} | ${(perCall / 1000).toFixed(1)}k |`);
    }
  } finally {
    if (postmaster.exitCode === null) postmaster.kill('SIGKILL');
    server.stop();
  }
}

await main();
