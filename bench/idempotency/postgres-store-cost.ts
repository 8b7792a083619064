// What one PostgreSQL store operation costs, in this process and in PostgreSQL: app CPU µs, server
// CPU µs (every process of the throwaway server, from /proc) and wall time per operation of
// TypeOrmIdempotencyStore, called directly (no HTTP), 10 operations in flight, on a durable
// throwaway server (fsync, synchronous_commit on). New key: claim + complete of a fresh key.
// Replay: claim of one completed key. Floor: a prepared `SELECT 1` through the same pool.
//   npm run build:sample && node build/bench/idempotency/postgres-store-cost.js
//   BENCH_OPS=4000 BENCH_ROUNDS=3 BENCH_POOL=10 BENCH_VARIANTS=replay,new node build/bench/idempotency/postgres-store-cost.js
// Add --cpu-prof to node's flags for a profile of the store's path without HTTP around it.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import type { IdempotencyClaim, IdempotencyLease } from 'nest-resilience';
import { DataSource } from 'typeorm';
import { loadPostgresScript } from '../shared/postgres.js';
import { CoalescedPostgresPrototype } from './postgres-coalesced-prototype.js';

const OPS = Number(process.env.BENCH_OPS ?? 4_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 10);
const POOL = Number(process.env.BENCH_POOL ?? 10);
const CLOCK_TICKS_PER_S = 100;
const RESPONSE = { status: 201, headers: {}, body: '{"id":1,"item":"book","qty":2,"status":"created"}', bodyEncoding: 'json' as const };

/**
 * CPU seconds used so far by the server: every live process of it (utime + stime of
 * /proc/<pid>/stat) plus what its postmaster reaped (cutime + cstime), so connections the pool
 * closed or opened meanwhile are counted too.
 */
function serverCpuSeconds(pids: () => number[]): number {
  let ticks = 0;
  const [postmaster, ...children] = pids();
  for (const pid of [postmaster, ...children]) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      if (pid === postmaster) ticks += Number(fields[13]) + Number(fields[14]);
    } catch {
      // exited meanwhile: reaped into the postmaster's cutime/cstime
    }
  }
  return ticks / CLOCK_TICKS_PER_S;
}

interface Cost {
  appUs: number;
  serverUs: number;
  wallUs: number;
}

async function measure(pids: () => number[], operation: (index: number) => Promise<unknown>): Promise<Cost> {
  let next = 0;
  const worker = async () => {
    while (next < OPS) await operation(next++);
  };
  const serverBefore = serverCpuSeconds(pids);
  const appBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const wall = performance.now() - wallBefore;
  const app = process.cpuUsage(appBefore);
  const server = serverCpuSeconds(pids) - serverBefore;
  return { appUs: (app.user + app.system) / OPS, serverUs: (server * 1e6) / OPS, wallUs: (wall * 1000) / OPS };
}

async function main(): Promise<void> {
  const { startPostgres } = await loadPostgresScript();
  const server = await startPostgres({ durable: true });
  const dataSource = await new DataSource({ type: 'postgres', url: server.url, entities: [IdempotencyRecord], synchronize: true, poolSize: POOL }).initialize();
  try {
    const store = new TypeOrmIdempotencyStore(dataSource);
    const run = randomBytes(4).toString('hex');
    const claimOf = (key: string): IdempotencyClaim => ({
      namespace: 'default',
      scope: '',
      key,
      fingerprint: 'f'.repeat(64),
      method: 'POST',
      path: '/orders',
      leaseMs: 30_000,
      ttlMs: 86_400_000,
    });
    const replayKey = `replay-${run}`;
    const first = await store.claim(claimOf(replayKey));
    if (first.state !== 'acquired') throw new Error(`the replay key was not acquired (${first.state})`);
    await store.complete(first.lease, RESPONSE, 86_400_000);
    const pool = (dataSource.driver as unknown as { master: { query(config: { name: string; text: string; values: unknown[] }): Promise<unknown> } }).master;
    const prototype = new CoalescedPostgresPrototype(pool as never, Number(process.env.BENCH_COALESCE_IN_FLIGHT ?? 2));
    const variants: Record<string, (index: number) => Promise<unknown>> = {
      'new key (claim + complete)': async (index) => {
        const claimed = await store.claim(claimOf(`new-${run}-${index}-${Math.random()}`));
        if (claimed.state !== 'acquired') throw new Error(`a fresh key was not acquired (${claimed.state})`);
        await store.complete(claimed.lease as IdempotencyLease, RESPONSE, 86_400_000);
      },
      'new key, claim only': async (index) => {
        const claimed = await store.claim(claimOf(`claim-${run}-${index}-${Math.random()}`));
        if (claimed.state !== 'acquired') throw new Error(`a fresh key was not acquired (${claimed.state})`);
      },
      'replay (claim)': async () => {
        const claimed = await store.claim(claimOf(replayKey));
        if (claimed.state !== 'completed') throw new Error(`the replay key was not completed (${claimed.state})`);
      },
      'prototype, coalesced: new key': async (index) => {
        const claimed = await prototype.claim({ key: `proto-${run}-${index}-${Math.random()}`, fingerprint: 'f'.repeat(64) });
        if (claimed.state !== 'acquired') throw new Error(`a fresh key was not acquired (${claimed.state})`);
        if (!(await prototype.complete(claimed.recordId, claimed.owner, RESPONSE.body))) throw new Error('the prototype lost a lease');
      },
      'prototype, coalesced: replay': async () => {
        const claimed = await prototype.claim({ key: replayKey, fingerprint: 'f'.repeat(64) });
        if (claimed.state !== 'completed') throw new Error(`the replay key was not completed (${claimed.state})`);
      },
      'floor: prepared SELECT 1 (pool.query)': () => pool.query({ name: 'bench_select_1', text: 'SELECT 1 AS ok', values: [] }),
    };
    const wanted = process.env.BENCH_VARIANTS?.split(',').map((name) => name.trim());
    for (const name of Object.keys(variants)) if (wanted && !wanted.some((prefix) => name.startsWith(prefix))) delete variants[name];
    const results = new Map<string, Cost[]>();
    for (const [name, operation] of Object.entries(variants)) await measure(server.pids, operation); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, operation] of Object.entries(variants)) {
        const cost = await measure(server.pids, operation);
        results.set(name, [...(results.get(name) ?? []), cost]);
        await dataSource.query('CHECKPOINT');
      }
    }
    console.log(`prototype: requests per statement ${JSON.stringify(prototype.batchSizes())}`);
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    console.log(`${OPS} ops × ${ROUNDS} rounds, ${IN_FLIGHT} in flight, pool ${POOL}; medians per operation`);
    console.log('| operation | app CPU µs | PostgreSQL CPU µs | wall µs (ops/s) |\n| --- | --- | --- | --- |');
    for (const [name, costs] of results) {
      const wall = median(costs.map((c) => c.wallUs));
      console.log(`| ${name} | ${median(costs.map((c) => c.appUs)).toFixed(0)} | ${median(costs.map((c) => c.serverUs)).toFixed(0)} | ${wall.toFixed(0)} (${Math.round(1e6 / wall)}) |`);
    }
  } finally {
    await dataSource.destroy();
    server.stop();
  }
}

await main();
