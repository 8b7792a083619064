import { Body, Controller, Logger, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore, type IdempotencyStore } from 'nest-resilience';
import { FakeClock } from 'nest-resilience/testing';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, gate, type IdempotencyTestApp } from './support.js';
import { createStore, storeKinds, type StoreUnderTest } from './stores.js';

const LEASE_MS = 3_000;
const SQL_LEASE_MS = 600;

/** What execution `n` of run `r` waits for, by `r#n`; every entry of `entered` is `r#n`. */
const holds = new Map<string, Promise<void>>();
const entered: string[] = [];
const executions = new Map<string, number>();

@Controller('jobs')
class JobsController {
  @Post()
  @Idempotent()
  async run(@Body() body: { run: string }) {
    const execution = (executions.get(body.run) ?? 0) + 1;
    executions.set(body.run, execution);
    entered.push(`${body.run}#${execution}`);
    await holds.get(`${body.run}#${execution}`);
    return { run: body.run, execution };
  }
}

/**
 * Delegates to `store`, except that heartbeats can be stalled (never answered, as when the event
 * loop or the connection pool is stuck) or made to report a lost lease.
 */
function controllableHeartbeats(store: IdempotencyStore) {
  const control = { mode: 'normal' as 'normal' | 'stalled' | 'lost', beats: 0 };
  const wrapped: IdempotencyStore = {
    claim: (claim) => store.claim(claim),
    heartbeat: (lease, leaseMs) => {
      control.beats++;
      if (control.mode === 'stalled') return new Promise<boolean>(() => undefined);
      if (control.mode === 'lost') return Promise.resolve(false);
      return store.heartbeat(lease, leaseMs);
    },
    complete: (lease, response, ttlMs) => store.complete(lease, response, ttlMs),
    release: (lease) => store.release(lease),
    purgeExpired: (options) => store.purgeExpired(options),
    ping: () => store.ping(),
  };
  return { store: wrapped, control };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The stale owner `first` (execution 1) finishes after another request took its key over
 * (execution 2): it still answers its own client, but its late write changes nothing
 * (`lock_lost`), and the key keeps replaying the takeover's result.
 */
async function expectStaleOwnerFenced(
  harness: IdempotencyTestApp,
  run: string,
  first: Promise<request.Response>,
  replay: () => Promise<request.Response>,
): Promise<void> {
  const stale = await first;
  expect(stale.status).toBe(201);
  expect(stale.body).toEqual({ run, execution: 1 });
  expect(harness.named('idempotency_lock_lost').some((e) => e.detail === 'complete')).toBe(true);
  const replayed = await replay();
  expect(replayed.headers['idempotent-replayed']).toBe('true');
  expect(replayed.body).toEqual({ run, execution: 2 });
}

describe.each(platforms)('lease, heartbeat and fencing with a fake clock (memory store, %s)', (platform) => {
  let clock: FakeClock;
  let harness: IdempotencyTestApp;
  let app: INestApplication;
  let control: ReturnType<typeof controllableHeartbeats>['control'];

  beforeAll(async () => {
    clock = new FakeClock(1_000_000);
    const wrapped = controllableHeartbeats(new InMemoryIdempotencyStore({ clock }));
    control = wrapped.control;
    harness = await createIdempotencyApp(platform, { controllers: [JobsController], idempotency: { store: wrapped.store, lease: LEASE_MS }, clock });
    app = harness.app;
  });
  afterAll(async () => {
    await app?.close();
  });
  afterEach(() => {
    control.mode = 'normal';
    vi.restoreAllMocks();
  });

  const post = (key: string, body: object) => request(app.getHttpServer()).post('/jobs').set('Idempotency-Key', key).send(body);

  it('renews the lease every lease/3 while a slow handler runs, so duplicates keep getting 409', async () => {
    const run = `${platform}-slow`;
    const hold = gate();
    holds.set(`${run}#1`, hold.promise);
    const first = post(run, { run }).then((res) => res);
    await vi.waitFor(() => expect(entered).toContain(`${run}#1`));
    const beatsBefore = control.beats;
    await clock.advance(LEASE_MS * 4);
    expect(control.beats - beatsBefore).toBeGreaterThanOrEqual(11);
    const duplicate = await post(run, { run });
    expect(duplicate.status).toBe(409);
    expect(Number(duplicate.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(duplicate.headers['retry-after'])).toBeLessThanOrEqual(LEASE_MS / 1000);
    expect(harness.named('idempotency_takeover')).toHaveLength(0);
    hold.open();
    expect((await first).status).toBe(201);
    await clock.advance(LEASE_MS * 2);
    expect(clock.pendingTimers).toBe(0);
  });

  it('lets a retry take over an expired lease; the stale owner cannot overwrite the new result', async () => {
    const warn = vi.spyOn(Logger.prototype, 'warn');
    const run = `${platform}-stale`;
    const holdFirst = gate();
    holds.set(`${run}#1`, holdFirst.promise);
    control.mode = 'stalled';
    const first = post(run, { run }).then((res) => res);
    await vi.waitFor(() => expect(entered).toContain(`${run}#1`));
    await clock.advance(LEASE_MS + 1);

    const takeover = await post(run, { run });
    expect(takeover.status).toBe(201);
    expect(takeover.body).toEqual({ run, execution: 2 });
    expect(harness.named('idempotency_takeover')).toHaveLength(1);

    holdFirst.open();
    await expectStaleOwnerFenced(harness, run, first, () => post(run, { run }));
    expect(warn.mock.calls.some(([message]) => /lost its idempotency lease before complete/.test(String(message)))).toBe(true);
  });

  it('reports lock_lost when a heartbeat finds the lease gone, and does not write afterwards', async () => {
    const run = `${platform}-lost`;
    const hold = gate();
    holds.set(`${run}#1`, hold.promise);
    const first = post(run, { run }).then((res) => res);
    await vi.waitFor(() => expect(entered).toContain(`${run}#1`));
    control.mode = 'lost';
    await clock.advance(LEASE_MS / 3 + 1);
    expect(harness.named('idempotency_lock_lost').some((e) => e.detail === 'heartbeat')).toBe(true);
    const lostEvents = harness.named('idempotency_lock_lost').length;
    control.mode = 'normal';
    hold.open();
    expect((await first).status).toBe(201);
    // The record still belongs to the first claim in the store, but this owner believes it lost it: no complete attempted.
    expect(harness.named('idempotency_lock_lost')).toHaveLength(lostEvents);
  });
});

describe.each(storeKinds.filter((kind) => kind !== 'memory'))('stale owner on the real database clock (%s)', (kind) => {
  let store: StoreUnderTest;
  let harness: IdempotencyTestApp;
  let control: ReturnType<typeof controllableHeartbeats>['control'];

  beforeAll(async () => {
    store = await createStore(kind);
    const wrapped = controllableHeartbeats(store.store);
    control = wrapped.control;
    harness = await createIdempotencyApp('express', { controllers: [JobsController], idempotency: { store: wrapped.store, lease: SQL_LEASE_MS } });
  });
  afterAll(async () => {
    await harness?.app.close();
    await store?.close();
  });

  it('a handler that outlives its lease cannot overwrite the result of the request that took over', async () => {
    const server = harness.app.getHttpServer();
    const run = `${kind}-stale`;
    const post = () => request(server).post('/jobs').set('Idempotency-Key', run).send({ run });
    const holdFirst = gate();
    holds.set(`${run}#1`, holdFirst.promise);
    control.mode = 'stalled';
    const first = post().then((res) => res);
    await vi.waitFor(() => expect(entered).toContain(`${run}#1`));
    expect((await post()).status).toBe(409);
    await sleep(SQL_LEASE_MS + 150);
    const second = await post();
    expect(second.status).toBe(201);
    expect(second.body).toEqual({ run, execution: 2 });
    expect(harness.named('idempotency_takeover')).toHaveLength(1);

    holdFirst.open();
    await expectStaleOwnerFenced(harness, run, first, post);
  });
});
