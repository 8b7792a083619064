// What one script call costs the app in each Redis client: CPU µs per EVALSHA of the store's claim
// script (replays of one completed key, so Redis does the same work for every client), 10 calls in
// flight, in this process. Compares ioredis 5 (the store's client) with and without auto-pipelining
// against node-redis 4 (the client of @node-idempotency's Redis adapter, from bench/idempotency/peer).
//   npm run build:sample && node build/bench/idempotency/redis-client-cost.js
// Redis: REDIS_URL, else a throwaway redis-server.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { obtainRedis } from '../shared/redis.js';
import { packageRoot } from '../shared/report.js';

const CALLS = 40_000;
const IN_FLIGHT = 10;
const ROUNDS = 3;

interface Client {
  evalsha(sha: string, key: string, args: string[]): Promise<unknown>;
  close(): Promise<void> | void;
}

const CLAIM_LIKE = `
local record = redis.call('HMGET', KEYS[1], 'status', 'fingerprint', 'response')
if record[1] == 'completed' then return {'completed', (record[2] == ARGV[1]) and 1 or 0, record[3]} end
return {'missing', 0, 0}
`;

async function cpuPerCall(client: Client, sha: string, key: string): Promise<number> {
  const args = ['f'.repeat(64), 'owner-token-0000-0000-000000000000', '60000', '86400000', 'POST', '/orders'];
  let next = 0;
  const worker = async () => {
    while (next++ < CALLS) await client.evalsha(sha, key, args);
  };
  const start = process.cpuUsage();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / CALLS;
}

async function main(): Promise<void> {
  const redis = await obtainRedis();
  if ('skipped' in redis) throw new Error(redis.skipped);
  const setup = new Redis(redis.url);
  const sha = (await setup.script('LOAD', CLAIM_LIKE)) as string;
  const key = 'bench:client-cost';
  await setup.hset(key, 'status', 'completed', 'fingerprint', 'f'.repeat(64), 'response', JSON.stringify([201, {}, '{"id":1}', 'json']));
  const nodeRedis = createRequire(join(packageRoot(), 'bench', 'idempotency', 'peer', 'package.json'))('redis') as {
    createClient(options: { url: string }): { connect(): Promise<unknown>; evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>; quit(): Promise<unknown> };
  };
  const clients: Record<string, () => Promise<Client>> = {
    'ioredis 5, auto-pipelining (the store)': async () => {
      const client = new Redis(redis.url, { enableAutoPipelining: true });
      return { evalsha: (s, k, a) => client.evalsha(s, 1, k, ...a), close: () => client.disconnect() };
    },
    'ioredis 5, no auto-pipelining': async () => {
      const client = new Redis(redis.url);
      return { evalsha: (s, k, a) => client.evalsha(s, 1, k, ...a), close: () => client.disconnect() };
    },
    'node-redis 4 (@node-idempotency Redis adapter)': async () => {
      const client = nodeRedis.createClient({ url: redis.url });
      await client.connect();
      return { evalsha: (s, k, a) => client.evalSha(s, { keys: [k], arguments: a }), close: async () => void (await client.quit()) };
    },
  };
  const results: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, open] of Object.entries(clients)) {
      const client = await open();
      await cpuPerCall(client, sha, key); // warm-up
      (results[name] ??= []).push(await cpuPerCall(client, sha, key));
      await client.close();
    }
  }
  console.log(`| client | app CPU µs per EVALSHA (median of ${ROUNDS}, ${CALLS} calls, ${IN_FLIGHT} in flight) |\n|---|---|`);
  for (const [name, values] of Object.entries(results)) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(`| ${name} | ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} |`);
  }
  setup.disconnect();
  await redis.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
