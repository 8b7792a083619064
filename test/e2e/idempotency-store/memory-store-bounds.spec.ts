// The bounds of InMemoryIdempotencyStore: one test per eviction rule, the refusal when only
// requests in progress are left, and the start-up validation.
import { describe, expect, it } from 'vitest';
import { IdempotencyStoreFullError, InMemoryIdempotencyStore, storeFailureOf, type IdempotencyClaim, type IdempotencyLease, type StoredResponse } from 'nest-resilience/core';
import { EventRecorder, FakeClock } from 'nest-resilience/testing';

const DAY_MS = 86_400_000;
const response = (body = '{"ok":true}'): StoredResponse => ({ status: 201, headers: { 'content-type': 'application/json' }, body, bodyEncoding: 'json' });

function claimOf(key: string, overrides: Partial<IdempotencyClaim> = {}): IdempotencyClaim {
  return { namespace: 'bounds', scope: '', key, fingerprint: 'f'.repeat(64), method: 'POST', path: '/orders', leaseMs: 60_000, ttlMs: DAY_MS, ...overrides };
}

function setup(options: { maxRecords?: number; maxBytes?: number } = {}) {
  const clock = new FakeClock(1_700_000_000_000);
  const store = new InMemoryIdempotencyStore({ clock, ...options });
  const recorder = new EventRecorder();
  const warnings: string[] = [];
  store.observe({ events: recorder.sink, warn: (message) => warnings.push(message) });
  const acquire = async (key: string, overrides: Partial<IdempotencyClaim> = {}): Promise<IdempotencyLease> => {
    const result = await store.claim(claimOf(key, overrides));
    if (result.state !== 'acquired') throw new Error(`expected to acquire ${key}, got ${result.state}`);
    return result.lease;
  };
  const completed = async (key: string, ttlMs = DAY_MS, body?: string) => {
    await store.complete(await acquire(key, { ttlMs }), response(body), ttlMs);
  };
  /** What a claim of `key` finds now (`acquired` means it was not held). */
  const state = async (key: string) => (await store.claim(claimOf(key))).state;
  return { clock, store, recorder, warnings, acquire, completed, state };
}

describe('InMemoryIdempotencyStore bounds', () => {
  it('evicts the completed record whose retention ends first, not the oldest written', async () => {
    const { store, completed, state } = setup({ maxRecords: 3 });
    await completed('long', 3 * DAY_MS);
    await completed('short', 60_000);
    await completed('medium', DAY_MS);
    await completed('new', DAY_MS);
    expect(store.size).toBe(3);
    expect(await state('long')).toBe('completed');
    expect(await state('medium')).toBe('completed');
    // the evicted key is free again: a retry would run its handler again
    expect(await state('short')).toBe('acquired');
  });

  it('evicts expired records before live ones', async () => {
    const { clock, completed, state } = setup({ maxRecords: 2 });
    await completed('live', 3 * DAY_MS);
    await completed('expiring', 1_000);
    await clock.advance(2_000);
    await completed('new', DAY_MS);
    expect(await state('live')).toBe('completed');
    expect(await state('new')).toBe('completed');
  });

  it('never evicts a record in progress: with only those left, a new key is refused (IdempotencyStoreFullError, classified full)', async () => {
    const { store, acquire, completed, recorder } = setup({ maxRecords: 2 });
    await acquire('running');
    await completed('done');
    await acquire('second-running');
    // the completed one made room; the one in progress was kept
    expect(recorder.named('idempotency_evicted')).toHaveLength(1);
    const refusal = await store.claim(claimOf('third')).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(IdempotencyStoreFullError);
    expect(storeFailureOf(refusal)).toBe('full');
    expect((refusal as Error).message).toMatch(/all 2 records \(maxRecords\) are requests in progress/);
    // the requests in progress keep their keys, and a duplicate of one is still answered
    expect(await store.claim(claimOf('running'))).toMatchObject({ state: 'in_progress', sameRequest: true });
    expect(store.size).toBe(2);
  });

  it('emits idempotency_evicted for each eviction and warns once, naming the limit and the fix', async () => {
    const { completed, recorder, warnings } = setup({ maxRecords: 2 });
    for (let i = 0; i < 5; i++) await completed(`k${i}`);
    expect(recorder.named('idempotency_evicted')).toHaveLength(3);
    expect(recorder.named('idempotency_evicted')[0]).toMatchObject({ outcome: 'max_records', detail: expect.stringMatching(/evicted \d+ ms before its retention ended \(maxRecords \(2\) reached\)/) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/reached maxRecords \(2\).*a retry of an evicted key runs its handler again.*RedisIdempotencyStore/);
  });

  it('keeps the stored data within maxBytes, counted from the stored strings, evicting by retention', async () => {
    const { store, completed, recorder, state } = setup({ maxBytes: 64 * 1024 });
    const body = `"${'x'.repeat(10_000)}"`;
    for (let i = 0; i < 20; i++) await completed(`big-${i}`, DAY_MS + i, body);
    expect(store.bytes).toBeLessThanOrEqual(64 * 1024);
    // six bodies of 10 KB fit, with their keys and fingerprints
    expect(store.size).toBe(6);
    expect(recorder.named('idempotency_evicted').every((event) => event.outcome === 'max_bytes')).toBe(true);
    expect(await state('big-19')).toBe('completed');
    expect(await state('big-0')).toBe('acquired');
  });

  it('keeps a response that cannot fit beside the requests in progress without its body, so its key still completes', async () => {
    const { store, acquire, recorder } = setup({ maxBytes: 64 * 1024 });
    const lease = await acquire('huge');
    await store.complete(lease, response(`"${'y'.repeat(100_000)}"`), DAY_MS);
    const replay = await store.claim(claimOf('huge'));
    expect(replay).toMatchObject({ state: 'completed', response: { status: 201, body: null, headers: { ':kind': 'not_kept', ':bytes': '100002' } } });
    expect(recorder.named('idempotency_response_not_kept')).toMatchObject([{ outcome: 'max_bytes' }]);
    expect(store.bytes).toBeLessThan(1024);
  });

  it('frees the bytes and the slot of released, taken-over and swept records', async () => {
    const { clock, store, acquire, completed } = setup({ maxRecords: 10 });
    const released = await acquire('released');
    await store.release(released);
    await acquire('taken', { leaseMs: 1_000 });
    await clock.advance(2_000);
    await acquire('taken', { leaseMs: 1_000 });
    await completed('expired', 1_000);
    await clock.advance(2_000);
    await store.purgeExpired();
    expect(store.size).toBe(1);
    const one = store.bytes;
    expect(one).toBeGreaterThan(0);
    expect(one).toBeLessThan(300);
  });

  it.each([
    [{ maxRecords: 0 }, /maxRecords must be a whole number >= 1 \(got 0\); e\.g\. new InMemoryIdempotencyStore\(\{ maxRecords: 50000 \}\)/],
    [{ maxRecords: 1.5 }, /maxRecords must be a whole number >= 1 \(got 1\.5\)/],
    [{ maxBytes: 1000 }, /maxBytes must be a whole number >= 65536 \(got 1000\).*TypeOrmIdempotencyStore or RedisIdempotencyStore/],
  ])('refuses %o at construction, naming the fix', (options, message) => {
    expect(() => new InMemoryIdempotencyStore(options)).toThrow(message);
  });

  it('defaults to 50,000 records and 64 MiB', () => {
    const store = new InMemoryIdempotencyStore();
    expect({ maxRecords: store.maxRecords, maxBytes: store.maxBytes }).toEqual({ maxRecords: 50_000, maxBytes: 64 * 1024 * 1024 });
  });
});
