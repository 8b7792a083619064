// One process of bench/memory/store-cost.ts: runs `count` operations of one kind on an
// InMemoryIdempotencyStore loaded from BENCH_STORE_MODULE (this build's, or an older build's), after
// `warmup` of the same. Started under callgrind twice (two counts), so start-up cancels out.
//   node store-ops.js <new-key|new-key-full|replay> <warmup> <count>
import { pathToFileURL } from 'node:url';
import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from 'nest-resilience/core';

type Mode = 'new-key' | 'new-key-full' | 'replay';
const [mode, warmupText, countText] = process.argv.slice(2) as [Mode, string, string];
const modulePath = process.env.BENCH_STORE_MODULE;
if (!modulePath || !['new-key', 'new-key-full', 'replay'].includes(mode)) {
  throw new Error('usage: BENCH_STORE_MODULE=<dist/core/index.js> node store-ops.js <new-key|new-key-full|replay> <warmup> <count>');
}
const { InMemoryIdempotencyStore } = (await import(pathToFileURL(modulePath).href)) as { InMemoryIdempotencyStore: new (options?: object) => IdempotencyStore };

/** What the HTTP benchmark's order route stores: a small JSON body and its content type. */
const BODY = JSON.stringify({ id: 1, item: 'book', qty: 2, status: 'created' });
const response: StoredResponse = { status: 201, headers: { 'content-type': 'application/json; charset=utf-8' }, body: BODY, bodyEncoding: 'json' };
const claimOf = (key: string): IdempotencyClaim => ({ namespace: 'default', scope: '', key, fingerprint: 'a'.repeat(56) + key.slice(-8).padStart(8, '0'), method: 'POST', path: '/orders', leaseMs: 60_000, ttlMs: 86_400_000 });

/** Capacity of the "full" store: eviction on every new key once it is reached (an old build has no limit and ignores it). */
const FULL_AT = 10_000;
const store = new InMemoryIdempotencyStore(mode === 'new-key-full' ? { maxRecords: FULL_AT } : { maxRecords: 10_000_000, maxBytes: 1024 * 1024 * 1024 });
let sequence = 0;

async function newKey(): Promise<void> {
  const claimed = await store.claim(claimOf(`key-${++sequence}`));
  if (claimed.state !== 'acquired') throw new Error('the key was taken');
  await store.complete(claimed.lease, response, 86_400_000);
}

const replayClaim = claimOf('replayed');
async function replay(): Promise<void> {
  const claimed = await store.claim(replayClaim);
  if (claimed.state !== 'completed') throw new Error('no replay');
}

if (mode === 'replay') {
  const claimed = await store.claim(replayClaim);
  if (claimed.state !== 'acquired') throw new Error('the replayed key was taken');
  await store.complete(claimed.lease, response, 86_400_000);
}
if (mode === 'new-key-full') for (let i = 0; i < FULL_AT; i++) await newKey();
const operation = mode === 'replay' ? replay : newKey;
for (let i = 0, n = Number(warmupText); i < n; i++) await operation();
for (let i = 0, n = Number(countText); i < n; i++) await operation();
