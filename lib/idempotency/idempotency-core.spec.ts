import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ResilienceEvent } from '../core/events.js';
import { FakeClock } from '../testing/fake-clock.js';
import {
  IdempotencyCore,
  isStoreUnavailableError,
  type HandlerOutcome,
  type IdempotencyAnswer,
  type IdempotencyExecution,
  type IdempotentRequest,
  type IdempotentResponse,
} from './idempotency-core.js';
import { resolveIdempotencyOptions, type IdempotentOptions } from './idempotency-options.interface.js';
import type { IdempotencyStore, TransactionalOutcome } from './idempotency-store.interface.js';
import { InMemoryIdempotencyStore } from './in-memory-idempotency.store.js';

/** A response double: what the core reads and writes. */
function response(status = 201): IdempotentResponse & { headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  return {
    headers,
    status: () => status,
    replayableHeaders: (allowList) => Object.fromEntries(Object.entries(headers).filter(([name]) => allowList.has(name))),
    setHeader: (name, value) => {
      headers[name.toLowerCase()] = value;
    },
  };
}

function request(key: string | undefined, body: unknown = { amount: 10 }, options: IdempotentOptions = {}): IdempotentRequest {
  return {
    name: 'Payments.create',
    options: resolveIdempotencyOptions(undefined, options, undefined, 'Payments.create'),
    method: 'POST',
    url: '/payments',
    headers: key === undefined ? {} : { 'idempotency-key': key },
    body,
    route: 'POST /payments',
    request: {},
    hasUser: false,
  };
}

const value = (value: unknown, fromHandler = true): HandlerOutcome => ({ kind: 'value', value, emissions: 1, fromHandler });

function setup(store?: IdempotencyStore) {
  const clock = new FakeClock(1_000);
  const events: ResilienceEvent[] = [];
  const warnings: string[] = [];
  const core = new IdempotencyCore({
    store: store ?? new InMemoryIdempotencyStore({ clock }),
    clock,
    events: (event) => void events.push(event),
    warn: (message) => void warnings.push(message),
  });
  let runs = 0;
  /** Runs the core once; the handler answers `outcome` (after `hold`, if given). */
  const send = (req: IdempotentRequest, outcome: HandlerOutcome = value({ id: 1 }), hold?: Promise<void>): Promise<IdempotencyAnswer> =>
    core.execute(req, response(), async () => {
      runs++;
      await hold;
      return outcome;
    });
  return { clock, core, events, warnings, send, runs: () => runs };
}

function errorCode(answer: IdempotencyAnswer): string | undefined {
  return answer.kind === 'rejected' ? answer.error.code : undefined;
}

describe('IdempotencyCore (no Nest, fake clock, in-memory store)', () => {
  it('answers 400 for a missing or malformed key without running the handler', async () => {
    const { send, runs } = setup();
    expect(errorCode(await send(request(undefined)))).toBe('idempotency_key_missing');
    const invalid = await send(request('"unterminated'));
    expect(errorCode(invalid)).toBe('idempotency_key_invalid');
    expect(invalid.kind === 'rejected' && invalid.error.status).toBe(400);
    expect(runs()).toBe(0);
  });

  it('runs without idempotency when the key is optional and absent', async () => {
    const { send, runs } = setup();
    const answer = await send(request(undefined, {}, { required: false }));
    expect(answer).toEqual({ kind: 'delivered', outcome: value({ id: 1 }) });
    expect(runs()).toBe(1);
  });

  it('runs the handler once per key and replays the stored response to a retry', async () => {
    const { send, runs, events } = setup();
    const first = await send(request('pay-1'), value({ id: 7 }));
    expect(first).toEqual({ kind: 'delivered', outcome: value({ id: 7 }) });
    const retry = await send(request('pay-1'), value({ id: 8 }));
    expect(retry.kind).toBe('replay');
    expect(retry.kind === 'replay' && JSON.parse(retry.response.body!)).toEqual({ id: 7 });
    expect(retry.kind === 'replay' && retry.response.status).toBe(201);
    expect(runs()).toBe(1);
    expect(events.map((event) => event.event)).toEqual(['idempotency_executed', 'idempotency_replayed']);
    expect(events[0]!.key).toMatch(/^sha256:[0-9a-f]{12}$/);
  });

  it('answers 409 with the remaining lease to a duplicate in flight, and 422 to the same key with another body', async () => {
    const { send, clock } = setup();
    let finish!: () => void;
    const first = send(request('pay-2', {}, { lease: 30_000 }), value({ id: 1 }), new Promise<void>((resolve) => (finish = resolve)));
    await clock.advance(5_000);
    const duplicate = await send(request('pay-2', {}, { lease: 30_000 }));
    expect(errorCode(duplicate)).toBe('idempotency_request_in_progress');
    expect(duplicate.kind === 'rejected' && duplicate.error.retryAfterMs).toBe(25_000);
    const other = await send(request('pay-2', { amount: 99 }, { lease: 30_000 }));
    expect(errorCode(other)).toBe('idempotency_key_reused');
    finish();
    expect((await first).kind).toBe('delivered');
  });

  it('renews the lease while the handler runs, so a duplicate after the lease still gets 409', async () => {
    const { send, clock, events } = setup();
    let finish!: () => void;
    const first = send(request('pay-3', {}, { lease: 3_000 }), value({ id: 1 }), new Promise<void>((resolve) => (finish = resolve)));
    await clock.advance(10_000);
    expect(errorCode(await send(request('pay-3', {}, { lease: 3_000 })))).toBe('idempotency_request_in_progress');
    expect(events.some((event) => event.event === 'idempotency_takeover')).toBe(false);
    finish();
    await first;
    expect(clock.pendingTimers).toBe(0);
  });

  it('releases the key after a 5xx, a crash or a fallback answer, so a retry runs the handler again', async () => {
    const { send, runs } = setup();
    const serverError = { getStatus: () => 503, getResponse: () => ({ message: 'busy' }) };
    await send(request('pay-4'), { kind: 'error', error: serverError });
    await send(request('pay-4'), { kind: 'error', error: new Error('bug') });
    await send(request('pay-4'), value({ cached: true }, false));
    const last = await send(request('pay-4'), value({ id: 4 }));
    expect(last.kind).toBe('delivered');
    expect(runs()).toBe(4);
    expect((await send(request('pay-4'))).kind).toBe('replay');
  });

  it('stores an HTTP error below 500 and replays it', async () => {
    const { send } = setup();
    const declined = { getStatus: () => 402, getResponse: () => ({ message: 'card declined' }) };
    await send(request('pay-5'), { kind: 'error', error: declined });
    const replay = await send(request('pay-5'));
    expect(replay.kind === 'replay' && replay.response.status).toBe(402);
    expect(replay.kind === 'replay' && JSON.parse(replay.response.body!)).toEqual({ message: 'card declined' });
  });

  it('keeps the key of a handler still running (abandoned by a timeout) until it settles', async () => {
    const { core, send } = setup();
    let execution: IdempotencyExecution | undefined;
    const answer = await core.execute(request('pay-6'), response(), async (current) => {
      execution = current;
      current!.running++;
      return { kind: 'error', error: new Error('attempt timed out') };
    });
    expect(answer.kind).toBe('delivered');
    expect(errorCode(await send(request('pay-6')))).toBe('idempotency_request_in_progress');
    execution!.running--;
    execution!.onIdle?.();
    await Promise.resolve();
    expect((await send(request('pay-6'), value({ id: 6 }))).kind).toBe('delivered');
  });

  it('answers 503 store unavailable without running the handler when the store fails', async () => {
    const failing = new InMemoryIdempotencyStore();
    failing.claim = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }));
    const { send, runs } = setup(failing);
    const answer = await send(request('pay-7'));
    expect(errorCode(answer)).toBe('idempotency_store_unavailable');
    expect(answer.kind === 'rejected' && answer.error.retryAfterMs).toBe(1_000);
    expect(answer.kind === 'rejected' && answer.error.detail).not.toContain('10.0.0.5');
    expect(runs()).toBe(0);
  });

  it('in transactional mode, answers 503 and frees the key when the database connection drops under the handler', async () => {
    const memory = new InMemoryIdempotencyStore();
    const committed: unknown[] = [];
    // a store with transactions over the in-memory one: commit stores, rollback releases
    const transactional: IdempotencyStore = Object.assign(Object.create(memory) as IdempotencyStore, {
      async runInTransaction<T>(claim: Parameters<IdempotencyStore['claim']>[0], work: (transaction: unknown, lease: never) => Promise<TransactionalOutcome<T>>) {
        const claimed = await memory.claim(claim);
        if (claimed.state !== 'acquired') return claimed;
        const outcome = await work({ tx: true }, claimed.lease as never).catch(async (error: unknown) => {
          await memory.release(claimed.lease);
          throw error;
        });
        if (outcome.action === 'rollback') {
          await memory.release(claimed.lease);
          throw outcome.error;
        }
        committed.push(outcome.response);
        await memory.complete(claimed.lease, outcome.response, claim.ttlMs);
        return { state: 'executed' as const, value: outcome.value };
      },
    });
    const { send, runs } = setup(transactional);
    const dropped = Object.assign(new Error('Connection terminated unexpectedly'), { driverError: { code: '57P01' } });
    const answer = await send(request('pay-8', {}, { transactional: true }), { kind: 'error', error: dropped });
    expect(errorCode(answer)).toBe('idempotency_store_unavailable');
    expect(answer.kind === 'rejected' && answer.error.status).toBe(503);
    const retry = await send(request('pay-8', {}, { transactional: true }), value({ id: 8 }));
    expect(retry.kind).toBe('delivered');
    expect(runs()).toBe(2);
    expect(committed).toHaveLength(1);
  });

  it('classifies dropped connections, lock and statement timeouts as "store unavailable", through causes', () => {
    expect(isStoreUnavailableError({ code: '08006' })).toBe(true);
    expect(isStoreUnavailableError({ code: '55P03' })).toBe(true);
    expect(isStoreUnavailableError({ message: 'query failed', driverError: { code: '57014' } })).toBe(true);
    expect(isStoreUnavailableError(new Error('x', { cause: { code: 'ECONNRESET' } }))).toBe(true);
    expect(isStoreUnavailableError({ code: '23505' })).toBe(false);
    expect(isStoreUnavailableError(new Error('unique violation'))).toBe(false);
  });

  it('loads no Nest and no rxjs: its static imports never reach them', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const [, kind, specifier] of source.matchAll(/^(import|export)(?!\s+type)[^;]*?from\s+'([^']+)';/gms)) {
        if (kind === undefined || specifier === undefined) continue;
        if (specifier.startsWith('.')) visit(join(dirname(file), specifier.replace(/\.js$/, '.ts')));
        else packages.add(specifier);
      }
    };
    visit(join(here, 'idempotency-core.ts'));
    expect(seen.size).toBeGreaterThan(5);
    expect([...packages].filter((name) => !name.startsWith('node:'))).toEqual([]);
  });
});
