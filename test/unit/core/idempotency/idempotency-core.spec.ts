import { Readable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ResilienceEvent, ResilienceEventName } from '../../../../lib/core/events.js';
import { FakeClock } from '../../../../lib/testing/fake-clock.js';
import { CommitOutcomeUnknownError, isStoreUnavailableError, storeFailureOf } from '../../../../lib/core/idempotency/store-failure.js';
import { IdempotencyCore, notKeptProblemOf } from '../../../../lib/core/idempotency/idempotency-core.js';
import type {
  HandlerOutcome,
  IdempotencyAnswer,
  IdempotencyExecution,
  IdempotentRequest,
  IdempotentResponse,
} from '../../../../lib/core/idempotency/idempotency-core.interface.js';
import { IdempotencyErrorCode, IdempotencyStoreUnavailableError, isIdempotencyError } from '../../../../lib/core/idempotency/idempotency-core.errors.js';
import { DEADLINE_LEASE_MARGIN_MS, resolveIdempotencyOptions, type IdempotentOptions } from '../../../../lib/core/idempotency/idempotency-options.interface.js';
import type {
  IdempotencyClaim,
  IdempotencyLease,
  IdempotencyStore,
  TransactionalOutcome,
  TransactionalResult,
} from '../../../../lib/core/idempotency/idempotency-store.interface.js';
import { InMemoryIdempotencyStore } from '../../../../lib/core/idempotency/in-memory-idempotency.store.js';
import { recordIdOf } from '../../../../lib/core/idempotency/record-id.js';

const LEASE_MS = 3_000;

/** An HTTP error shaped like Nest's HttpException, without Nest. */
class FakeHttpError extends Error {
  constructor(
    private readonly status: number,
    private readonly body: unknown = { statusCode: status, message: 'failed' },
  ) {
    super(`HTTP ${status}`);
  }
  getStatus(): number {
    return this.status;
  }
  getResponse(): unknown {
    return this.body;
  }
}

/** The in-memory store plus a transaction emulation: the claim is undone unless the work stores a response. */
class TransactionalMemoryStore extends InMemoryIdempotencyStore {
  commitError: unknown;
  readonly transactions: object[] = [];

  async runInTransaction<T>(
    claim: IdempotencyClaim,
    work: (transaction: unknown, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>> {
    const result = await this.claim(claim);
    if (result.state !== 'acquired') return result;
    const transaction = { id: this.transactions.length + 1 };
    this.transactions.push(transaction);
    let outcome: TransactionalOutcome<T>;
    try {
      outcome = await work(transaction, result.lease);
    } catch (error) {
      await this.release(result.lease);
      throw error;
    }
    if (outcome.action === 'rollback') {
      await this.release(result.lease);
      throw outcome.error;
    }
    if (this.commitError !== undefined) {
      await this.release(result.lease);
      throw this.commitError;
    }
    await this.complete(result.lease, outcome.response, claim.ttlMs);
    return { state: 'executed', value: outcome.value };
  }
}

interface RecordingResponse extends IdempotentResponse {
  readonly headersSet: Record<string, string>;
}

function responseOf(status: number | undefined = 201, headers: Record<string, string> = {}): RecordingResponse {
  const headersSet: Record<string, string> = {};
  return {
    headersSet,
    status: () => status,
    replayableHeaders: (allowList) => Object.fromEntries(Object.entries(headers).filter(([name]) => [...allowList].includes(name.toLowerCase()))),
    setHeader: (name, value) => {
      headersSet[name] = value;
    },
  };
}

function deferred<T>(): { readonly promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

const value = (body: unknown, fromHandler = true): HandlerOutcome => ({ kind: 'value', value: body, emissions: 1, fromHandler });
const failure = (error: unknown): HandlerOutcome => ({ kind: 'error', error });

function rejectionOf(answer: IdempotencyAnswer) {
  expect(answer.kind).toBe('rejected');
  return (answer as Extract<IdempotencyAnswer, { kind: 'rejected' }>).error;
}

describe('IdempotencyCore', () => {
  let clock: FakeClock;
  let store: InMemoryIdempotencyStore;
  let events: ResilienceEvent[];
  let warnings: string[];
  let core: IdempotencyCore;

  const coreWith = (custom: IdempotencyStore) => new IdempotencyCore({ store: custom, clock, events: (event) => events.push(event), warn: (message) => warnings.push(message) });

  function requestOf(overrides: { key?: string | string[] | null; body?: unknown; method?: string; options?: IdempotentOptions; hasUser?: boolean; request?: unknown } = {}): IdempotentRequest {
    const key = overrides.key === undefined ? 'key-1' : overrides.key;
    return {
      name: 'ReportsController.create',
      options: resolveIdempotencyOptions({ logKeys: false }, { lease: LEASE_MS, ...overrides.options }, undefined, 'ReportsController.create'),
      method: overrides.method ?? 'POST',
      url: '/reports?b=2&a=1',
      headers: key === null ? {} : { 'idempotency-key': key },
      body: overrides.body ?? { title: 'Q3' },
      route: 'POST /reports',
      requestId: 'req-1',
      request: overrides.request ?? {},
      hasUser: overrides.hasUser ?? false,
    };
  }

  /** A `run` that counts its calls and records the executions it was given. */
  function runner(outcome: HandlerOutcome | ((execution: IdempotencyExecution | undefined) => Promise<HandlerOutcome>)) {
    const calls: (IdempotencyExecution | undefined)[] = [];
    const run = async (execution: IdempotencyExecution | undefined) => {
      calls.push(execution);
      return typeof outcome === 'function' ? outcome(execution) : outcome;
    };
    return { run, calls };
  }

  const named = (name: string) => events.filter((event) => event.event === name);

  beforeEach(() => {
    clock = new FakeClock(1_000_000);
    store = new InMemoryIdempotencyStore({ clock });
    events = [];
    warnings = [];
    core = coreWith(store);
  });

  describe('keys', () => {
    it('rejects a missing key with 400 idempotency_key_missing without running the handler', async () => {
      const { run, calls } = runner(value({ id: 1 }));
      const error = rejectionOf(await core.execute(requestOf({ key: null }), responseOf(), run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.KeyMissing, status: 400, headerName: 'Idempotency-Key' });
      expect(isIdempotencyError(error)).toBe(true);
      expect(calls).toHaveLength(0);
      expect(named('idempotency_rejected')).toMatchObject([{ status: 400, detail: 'missing', route: 'POST /reports', policy: 'POST /reports', requestId: 'req-1' }]);
    });

    it('runs without idempotency when the key is missing and not required', async () => {
      const { run, calls } = runner(value({ id: 1 }));
      const answer = await core.execute(requestOf({ key: null, options: { required: false } }), responseOf(), run);
      expect(answer).toEqual({ kind: 'delivered', outcome: value({ id: 1 }) });
      expect(calls).toEqual([undefined]);
      expect(store.size).toBe(0);
    });

    it('rejects a header sent several times and a malformed key with 400 idempotency_key_invalid', async () => {
      const { run, calls } = runner(value({ id: 1 }));
      const several = rejectionOf(await core.execute(requestOf({ key: ['a', 'b'] }), responseOf(), run));
      expect(several).toMatchObject({ code: IdempotencyErrorCode.KeyInvalid, status: 400 });
      expect(several.detail).toContain('several times');
      const params = rejectionOf(await core.execute(requestOf({ key: 'abc;x=1' }), responseOf(), run));
      expect(params).toMatchObject({ code: IdempotencyErrorCode.KeyInvalid, status: 400 });
      expect(calls).toHaveLength(0);
      expect(named('idempotency_rejected')).toHaveLength(2);
    });

    it('reads the key through keyResolver when configured', async () => {
      const { run } = runner(value({ id: 1 }));
      const request = requestOf({ key: null, request: { body: { ref: 'from-body' } }, options: { keyResolver: (req: { body: { ref: string } }) => req.body.ref } });
      const response = responseOf();
      expect((await core.execute(request, response, run)).kind).toBe('delivered');
      expect(response.headersSet).toEqual({ 'Idempotency-Key': 'from-body' });
    });

    it('lets safe methods bypass idempotency', async () => {
      const { run, calls } = runner(value({ id: 1 }));
      expect((await core.execute(requestOf({ method: 'GET', key: null }), responseOf(200), run)).kind).toBe('delivered');
      expect(calls).toEqual([undefined]);
    });
  });

  describe('lease mode', () => {
    it("gives the handler the claim's context: key, scope, fence and the record id every instance computes, never the owner token", async () => {
      const { run, calls } = runner(value({ id: 1 }));
      await core.execute(requestOf({ key: 'ctx-1' }), responseOf(), run);
      const context = calls[0]!.info!;
      expect(context).toMatchObject({ key: 'ctx-1', scope: '', fence: 1 });
      expect(context.recordId).toBe(recordIdOf('default', '', 'ctx-1'));
      expect(context.downstreamKey('payments')).toMatch(/^[0-9a-f]{48}$/);
      expect(context.downstreamKey('payments')).not.toBe(context.downstreamKey('emails'));
      const serialised = JSON.parse(JSON.stringify(context)) as Record<string, unknown>;
      expect(serialised).toEqual({ key: 'ctx-1', scope: '', recordId: context.recordId, fence: 1 });
      expect(JSON.stringify({ ...context })).not.toMatch(/owner/);
    });

    it('stores the first outcome and replays it to a retry with the same key', async () => {
      const { run, calls } = runner(value({ id: 42 }));
      const first = responseOf(201, { location: '/reports/42', 'set-cookie': 'a=b', 'content-type': 'application/json' });
      expect(await core.execute(requestOf(), first, run)).toEqual({ kind: 'delivered', outcome: value({ id: 42 }) });
      expect(first.headersSet).toEqual({ 'Idempotency-Key': 'key-1' });
      expect(calls[0]?.info).toMatchObject({ key: 'key-1', scope: '', fence: 1 });

      const retry = await core.execute(requestOf(), responseOf(), run);
      expect(retry).toEqual({
        kind: 'replay',
        response: { status: 201, headers: { location: '/reports/42', 'content-type': 'application/json' }, body: '{"id":42}', bodyEncoding: 'json' },
      });
      expect(calls).toHaveLength(1);
      expect(named('idempotency_executed')).toMatchObject([{ status: 201, outcome: 'stored' }]);
      expect(named('idempotency_replayed')).toMatchObject([{ status: 201 }]);
      expect(named('idempotency_replayed')[0]?.key).toMatch(/^sha256:[0-9a-f]{12}$/);
      expect(clock.pendingTimers).toBe(0);
    });

    it('answers a concurrent duplicate 409 with the remaining lease as retryAfterMs', async () => {
      const gate = deferred<HandlerOutcome>();
      const { run } = runner(() => gate.promise);
      const first = core.execute(requestOf(), responseOf(), run);
      await clock.flush();
      await clock.advance(500);
      const duplicate = rejectionOf(await core.execute(requestOf(), responseOf(), run));
      expect(duplicate).toMatchObject({ code: IdempotencyErrorCode.RequestInProgress, status: 409, retryAfterMs: LEASE_MS - 500 });
      expect(named('idempotency_conflict')).toMatchObject([{ status: 409 }]);
      gate.resolve(value({ id: 1 }));
      expect((await first).kind).toBe('delivered');
    });

    it('answers 422 when the key is reused for another body, even while the first runs', async () => {
      const { run } = runner(value({ id: 1 }));
      await core.execute(requestOf(), responseOf(), run);
      const reused = rejectionOf(await core.execute(requestOf({ body: { title: 'Q4' } }), responseOf(), run));
      expect(reused).toMatchObject({ code: IdempotencyErrorCode.KeyReused, status: 422 });
      expect(named('idempotency_mismatch')).toHaveLength(1);
    });

    it('stores a 4xx HTTP error of the handler and replays it as an error', async () => {
      const { run, calls } = runner(failure(new FakeHttpError(404, { message: 'no such report' })));
      const first = await core.execute(requestOf(), responseOf(), run);
      expect(first.kind).toBe('delivered');
      const replay = await core.execute(requestOf(), responseOf(), run);
      expect(replay).toMatchObject({ kind: 'replay', response: { status: 404, body: '{"message":"no such report"}', headers: { ':kind': 'error' } } });
      expect(calls).toHaveLength(1);
    });

    it.each([
      ['a 5xx HTTP error', new FakeHttpError(503)],
      ['a crash', new TypeError('boom')],
    ])('releases the key after %s so the retry runs again', async (_name, error) => {
      const { run, calls } = runner(failure(error));
      expect(await core.execute(requestOf(), responseOf(), run)).toEqual({ kind: 'delivered', outcome: failure(error) });
      expect(await core.execute(requestOf(), responseOf(), run)).toEqual({ kind: 'delivered', outcome: failure(error) });
      expect(calls).toHaveLength(2);
      expect(named('idempotency_released')[0]).toMatchObject({ outcome: error instanceof FakeHttpError ? 'not_stored' : 'crash' });
      expect(store.size).toBe(0);
    });

    it('releases a value a fallback produced instead of the handler', async () => {
      const { run, calls } = runner(value({ cached: true }, false));
      await core.execute(requestOf(), responseOf(200), run);
      expect((await core.execute(requestOf(), responseOf(200), run)).kind).toBe('delivered');
      expect(calls).toHaveLength(2);
      expect(named('idempotency_released')[0]).toMatchObject({ outcome: 'not_handler_result' });
    });

    it('completes the key of an unreplayable value without its body, with one warning naming the fix; the retry gets not_kept and does not run', async () => {
      const { run, calls } = runner(() => Promise.resolve(value(Readable.from(['a']))));
      expect((await core.execute(requestOf(), responseOf(200), run)).kind).toBe('delivered');
      const replay = await core.execute(requestOf(), responseOf(200), run);
      expect(calls).toHaveLength(1);
      expect(replay.kind).toBe('replay');
      const problem = notKeptProblemOf((replay as Extract<IdempotencyAnswer, { kind: 'replay' }>).response);
      expect(problem).toMatchObject({ code: IdempotencyErrorCode.ResponseNotKept, status: 200, reason: 'unreplayable' });
      expect(named('idempotency_response_not_kept')).toMatchObject([{ outcome: 'unreplayable', code: 'idempotency_response_not_kept' }]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/returned a stream.*completed without the body.*To replay the body, return a JSON-serialisable value/);
    });

    it('completes the key of a body over maxResponseBytes without the body: its status and replayable headers are kept', async () => {
      const { run, calls } = runner(value({ filler: 'x'.repeat(100) }));
      const options: IdempotentOptions = { maxResponseBytes: 50 };
      await core.execute(requestOf({ options }), responseOf(201, { location: '/reports/9', 'content-type': 'application/json' }), run);
      const replay = (await core.execute(requestOf({ options }), responseOf(), run)) as Extract<IdempotencyAnswer, { kind: 'replay' }>;
      expect(calls).toHaveLength(1);
      expect(replay.response).toMatchObject({ status: 201, body: null, headers: { location: '/reports/9' } });
      expect(replay.response.headers['content-type']).toBeUndefined();
      expect(notKeptProblemOf(replay.response)).toMatchObject({ status: 201, reason: 'too_large', bytes: 113 });
      expect(notKeptProblemOf(replay.response)!.detail).toMatch(/succeeded \(status 201\).*\(113 bytes\) was larger than the server keeps/);
    });

    it('on a route with a deadline, the lease follows it and a 409 never asks to wait longer than the deadline', async () => {
      const deadlineMs = 2_000;
      const options = resolveIdempotencyOptions({ logKeys: false }, undefined, undefined, 'PaymentsController.pay', deadlineMs);
      expect(options.lease).toBe(deadlineMs + DEADLINE_LEASE_MARGIN_MS);
      const onRoute = { ...requestOf(), options };
      const gate = deferred<HandlerOutcome>();
      const { run } = runner(() => gate.promise);
      const first = core.execute(onRoute, responseOf(), run);
      await clock.flush();
      await clock.advance(500);
      const duplicate = rejectionOf(await core.execute(onRoute, responseOf(), run));
      // at most the route's deadline (the request in flight cannot take longer), never under 1 s
      expect(duplicate).toMatchObject({ code: IdempotencyErrorCode.RequestInProgress, status: 409, retryAfterMs: deadlineMs });
      gate.resolve(value({ id: 1 }));
      await first;

      // an instance that froze mid-request (its handler never ends, its heartbeats never land) frees
      // the key one margin after the deadline, not one default lease (60 s) later
      const frozen = coreWith({
        claim: (claim) => store.claim(claim),
        heartbeat: () => new Promise<boolean>(() => undefined),
        complete: (lease, response, ttlMs) => store.complete(lease, response, ttlMs),
        release: (lease) => store.release(lease),
        purgeExpired: () => store.purgeExpired(),
        ping: () => store.ping(),
      });
      const crashedRequest = { ...onRoute, headers: { 'idempotency-key': 'crashed' } };
      void frozen.execute(crashedRequest, responseOf(), runner(() => new Promise<HandlerOutcome>(() => undefined)).run);
      await clock.flush();
      await clock.advance(deadlineMs + DEADLINE_LEASE_MARGIN_MS - 1);
      expect(rejectionOf(await core.execute(crashedRequest, responseOf(), runner(value({ id: 2 })).run)).code).toBe(IdempotencyErrorCode.RequestInProgress);
      await clock.advance(1);
      const retried = await core.execute(crashedRequest, responseOf(), runner(value({ id: 2 })).run);
      expect(retried.kind).toBe('delivered');
      expect(named('idempotency_takeover')).toHaveLength(1);
    });

    it('renews the lease with a heartbeat, so a duplicate long after the lease still gets 409', async () => {
      const gate = deferred<HandlerOutcome>();
      const { run, calls } = runner(() => gate.promise);
      const first = core.execute(requestOf(), responseOf(), run);
      await clock.advance(LEASE_MS * 4);
      const duplicate = rejectionOf(await core.execute(requestOf(), responseOf(), run));
      expect(duplicate.code).toBe(IdempotencyErrorCode.RequestInProgress);
      expect(duplicate.retryAfterMs).toBeGreaterThan(LEASE_MS / 2);
      expect(calls).toHaveLength(1);
      gate.resolve(value({ id: 1 }));
      await first;
      expect(clock.pendingTimers).toBe(0);
    });

    it('reports a lost lease: a takeover after failed heartbeats wins, and the stale complete changes nothing', async () => {
      const flaky: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, {
        heartbeat: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
      });
      const flakyCore = coreWith(flaky);
      const gate = deferred<HandlerOutcome>();
      const slow = runner(() => gate.promise);
      const first = flakyCore.execute(requestOf(), responseOf(), slow.run);
      await clock.advance(LEASE_MS + 1);
      expect(named('idempotency_store_error').map((event) => event.detail)).toContain('heartbeat');

      const second = runner(value({ id: 2 }));
      expect((await flakyCore.execute(requestOf(), responseOf(), second.run)).kind).toBe('delivered');
      expect(named('idempotency_takeover')).toMatchObject([{ detail: 'fence 2' }]);

      gate.resolve(value({ id: 1 }));
      expect(await first).toEqual({ kind: 'delivered', outcome: value({ id: 1 }) });
      expect(named('idempotency_lock_lost')).toMatchObject([{ detail: 'complete' }]);
      expect(warnings.some((message) => message.includes('lost its idempotency lease before complete'))).toBe(true);
      const replay = await flakyCore.execute(requestOf(), responseOf(), second.run);
      expect(replay).toMatchObject({ kind: 'replay', response: { body: '{"id":2}' } });
    });

    it('stops heartbeating once a heartbeat finds the lease lost', async () => {
      const lost: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, { heartbeat: async () => false });
      const gate = deferred<HandlerOutcome>();
      const first = coreWith(lost).execute(requestOf(), responseOf(), runner(() => gate.promise).run);
      await clock.advance(LEASE_MS);
      expect(named('idempotency_lock_lost')).toMatchObject([{ detail: 'heartbeat' }]);
      expect(clock.pendingTimers).toBe(0);
      gate.resolve(value({ id: 1 }));
      await first;
      expect(named('idempotency_executed')).toHaveLength(1);
    });

    it('answers 503 store unavailable when the claim fails, without running the handler', async () => {
      const storeError = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432 password=hunter2'), { code: 'ECONNREFUSED' });
      const down: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, { claim: () => Promise.reject(storeError) });
      const { run, calls } = runner(value({ id: 1 }));
      const error = rejectionOf(await coreWith(down).execute(requestOf(), responseOf(), run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.StoreUnavailable, status: 503, retryAfterMs: 1_000 });
      expect(error.cause).toBe(storeError);
      expect(error.detail).not.toContain('hunter2');
      expect(calls).toHaveLength(0);
      expect(named('idempotency_store_error')).toMatchObject([
        { detail: 'claim', status: 503, errorType: 'Error', outcome: 'unavailable', code: 'idempotency_store_unavailable', cause: expect.stringContaining('ECONNREFUSED') },
      ]);
    });

    it('tells a pool checkout timeout and a lock timeout apart from a dead database', async () => {
      const failures = [
        [new Error('timeout exceeded when trying to connect'), 'idempotency_store_pool_exhausted', 'pool_exhausted'],
        [Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }), 'idempotency_store_timeout', 'timeout'],
      ] as const;
      for (const [storeError, code, outcome] of failures) {
        const failing: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, { claim: () => Promise.reject(storeError) });
        const error = rejectionOf(await coreWith(failing).execute(requestOf(), responseOf(), runner(value(1)).run));
        expect(error).toMatchObject({ code, status: 503, retryAfterMs: 1_000 });
        expect(error.detail).not.toContain(storeError.message);
        expect(named('idempotency_store_error').at(-1)).toMatchObject({ detail: 'claim', code, outcome, cause: `Error: ${storeError.message}` });
      }
    });

    it('runs without idempotency when the store is down and failOpen is set', async () => {
      const down: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, { claim: () => Promise.reject(new Error('down')) });
      const { run, calls } = runner(value({ id: 1 }));
      const answer = await coreWith(down).execute(requestOf({ options: { failOpen: true } }), responseOf(), run);
      expect(answer).toEqual({ kind: 'delivered', outcome: value({ id: 1 }) });
      expect(calls).toEqual([undefined]);
      expect(named('idempotency_store_error')).toMatchObject([{ detail: 'claim_fail_open', outcome: 'unclassified', cause: 'Error: down' }]);
      expect(named('idempotency_store_error')[0]!.code).toBeUndefined();
    });

    it('keeps a released key while the handler still runs (running > 0), then releases it when it settles', async () => {
      const timeout = Object.assign(new Error('The attempt timed out.'), { name: 'AttemptTimeoutError' });
      let abandoned: IdempotencyExecution | undefined;
      const { run, calls } = runner(async (execution) => {
        if (calls.length === 1) {
          abandoned = execution;
          execution!.running++;
          return failure(timeout);
        }
        return value({ id: 2 });
      });
      expect(await core.execute(requestOf(), responseOf(), run)).toEqual({ kind: 'delivered', outcome: failure(timeout) });
      expect(store.size).toBe(1);
      expect(rejectionOf(await core.execute(requestOf(), responseOf(), run)).code).toBe(IdempotencyErrorCode.RequestInProgress);

      abandoned!.running--;
      abandoned!.onIdle?.();
      await clock.flush();
      expect(store.size).toBe(0);
      expect((await core.execute(requestOf(), responseOf(), run)).kind).toBe('delivered');
      expect(calls).toHaveLength(2);
    });

    it('answers a handler that failed on a silent database at once, and releases the key in the background', async () => {
      const silent = Object.assign(new Error('Query read timeout'), {});
      const release = deferred<boolean>();
      let released = 0;
      const slowRelease: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, {
        release: (lease: IdempotencyLease) => {
          released++;
          return release.promise.then(() => store.release(lease));
        },
      });
      const stuck = coreWith(slowRelease);
      // the release never settles until the test lets it: the answer must not wait for it
      const answer = await stuck.execute(requestOf(), responseOf(), runner(failure(silent)).run);
      expect(answer).toEqual({ kind: 'delivered', outcome: failure(silent) });
      expect(released).toBe(1);
      expect(rejectionOf(await stuck.execute(requestOf(), responseOf(), runner(value(1)).run)).code).toBe(IdempotencyErrorCode.RequestInProgress);
      release.resolve(true);
      await clock.flush();
      expect(store.size).toBe(0);

      // any other handler error: the release is awaited, so an immediate retry finds the key free
      let awaited = false;
      const awaitedRelease: IdempotencyStore = Object.assign(Object.create(store) as IdempotencyStore, {
        release: async (lease: IdempotencyLease) => {
          await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
          awaited = true;
          return store.release(lease);
        },
      });
      const pending = coreWith(awaitedRelease).execute(requestOf({ key: 'key-2' }), responseOf(), runner(failure(new Error('bug'))).run);
      await clock.advance(1);
      await pending;
      expect(awaited).toBe(true);
    });

    it('treats a rejected run as an error outcome', async () => {
      const crash = new Error('adapter bug');
      const answer = await core.execute(requestOf(), responseOf(), () => Promise.reject(crash));
      expect(answer).toEqual({ kind: 'delivered', outcome: failure(crash) });
      expect(store.size).toBe(0);
    });
  });

  describe('events nobody wants', () => {
    it('builds no event (and hashes no key) for names the sink says it does not want, and still builds the others', async () => {
      const asked: string[] = [];
      const sink = Object.assign((event: ResilienceEvent) => events.push(event), {
        wants: (name: ResilienceEventName) => {
          asked.push(name);
          return name === 'idempotency_replayed';
        },
      });
      core = new IdempotencyCore({ store, clock, events: sink });
      const { run, calls } = runner(value({ id: 1 }));
      await core.execute(requestOf(), responseOf(), run);
      await core.execute(requestOf(), responseOf(), run);
      expect(calls).toHaveLength(1);
      expect(asked).toEqual(['idempotency_executed', 'idempotency_replayed']);
      expect(events.map((event) => event.event)).toEqual(['idempotency_replayed']);
      expect(events[0].key).toMatch(/^sha256:[0-9a-f]{12}$/);
    });
  });

  describe('scope', () => {
    it('keeps keys of different scopes apart and hashes scopes longer than 255 characters', async () => {
      const scoped = (user: string) => requestOf({ request: { user }, hasUser: true, options: { scope: (req: { user: string }) => req.user } });
      const { run, calls } = runner(value({ id: 1 }));
      await core.execute(scoped('alice'), responseOf(), run);
      await core.execute(scoped('bob'), responseOf(), run);
      await core.execute(scoped('x'.repeat(300)), responseOf(), run);
      expect(calls.map((execution) => execution?.info?.scope)).toEqual(['alice', 'bob', expect.stringMatching(/^[0-9a-f]{64}$/)]);
      expect(warnings).toHaveLength(0);
    });

    it('warns once when an authenticated route has global keys', async () => {
      const { run } = runner(value({ id: 1 }));
      await core.execute(requestOf({ hasUser: true, key: 'a' }), responseOf(), run);
      await core.execute(requestOf({ hasUser: true, key: 'b' }), responseOf(), run);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('scope: (req) => req.user.id');
    });
  });

  describe('transactional mode', () => {
    let transactional: TransactionalMemoryStore;
    const options: IdempotentOptions = { transactional: true };

    beforeEach(() => {
      transactional = new TransactionalMemoryStore({ clock });
      core = coreWith(transactional);
    });

    it('runs the handler with the transaction and replays the committed response', async () => {
      const { run, calls } = runner(value({ id: 7 }));
      expect((await core.execute(requestOf({ options }), responseOf(), run)).kind).toBe('delivered');
      expect(calls[0]?.transaction).toBe(transactional.transactions[0]);
      expect(await core.execute(requestOf({ options }), responseOf(), run)).toMatchObject({ kind: 'replay', response: { body: '{"id":7}' } });
      expect(calls).toHaveLength(1);
    });

    it('answers 503 and frees the key when the handler hits a terminated database connection', async () => {
      const driverError = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      const queryFailed = Object.assign(new Error('QueryFailedError: terminating connection'), { name: 'QueryFailedError', driverError });
      const { run, calls } = runner(async () => (calls.length === 1 ? failure(queryFailed) : value({ id: 8 })));
      const error = rejectionOf(await core.execute(requestOf({ options }), responseOf(), run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.StoreUnavailable, status: 503, retryAfterMs: 1_000 });
      expect(error.cause).toBe(queryFailed);
      expect(error.detail).not.toContain('administrator');
      expect(named('idempotency_store_error')).toMatchObject([{ detail: 'handler', status: 503 }]);
      expect(transactional.size).toBe(0);

      expect(await core.execute(requestOf({ options }), responseOf(), run)).toEqual({ kind: 'delivered', outcome: value({ id: 8 }) });
      expect(calls).toHaveLength(2);
    });

    it('delivers other handler errors as they are, rolled back', async () => {
      const error = new FakeHttpError(409);
      const { run, calls } = runner(failure(error));
      expect(await core.execute(requestOf({ options }), responseOf(), run)).toEqual({ kind: 'delivered', outcome: failure(error) });
      expect(transactional.size).toBe(0);
      await core.execute(requestOf({ options }), responseOf(), run);
      expect(calls).toHaveLength(2);
    });

    it('answers 503 when the commit fails after the handler ran', async () => {
      transactional.commitError = Object.assign(new Error('Connection terminated unexpectedly'), {});
      const error = rejectionOf(await core.execute(requestOf({ options }), responseOf(), runner(value({ id: 9 })).run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.StoreUnavailable, status: 503 });
      expect(named('idempotency_store_error')).toMatchObject([{ detail: 'commit' }]);
    });

    it('answers 503 "outcome not known" when the COMMIT got no answer, so the retry reads the record', async () => {
      transactional.commitError = new CommitOutcomeUnknownError(new Error('Query read timeout'));
      const error = rejectionOf(await core.execute(requestOf({ options }), responseOf(), runner(value({ id: 9 })).run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.StoreTimeout, status: 503, retryAfterMs: 1_000, outcomeUnknown: true });
      expect(error.detail).toMatch(/not known yet.*you get its response if it was applied/);
      expect(named('idempotency_store_error')).toMatchObject([{ detail: 'commit_unknown', outcome: 'timeout' }]);
    });

    it('commits a response that cannot be serialised without its body: its writes stay, a retry gets not_kept', async () => {
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const { run, calls } = runner(value(circular));
      expect((await core.execute(requestOf({ options }), responseOf(), run)).kind).toBe('delivered');
      expect(transactional.size).toBe(1);
      const replay = (await core.execute(requestOf({ options }), responseOf(), run)) as Extract<IdempotencyAnswer, { kind: 'replay' }>;
      expect(calls).toHaveLength(1);
      expect(notKeptProblemOf(replay.response)).toMatchObject({ reason: 'unreplayable', status: 201 });
    });

    it('answers 500 response_not_storable when storeIf refuses the status of a value, with a client-safe detail', async () => {
      const error = rejectionOf(await core.execute(requestOf({ options: { ...options, storeIf: () => false } }), responseOf(), runner(value({ id: 1 })).run));
      expect(error).toMatchObject({ code: IdempotencyErrorCode.ResponseNotStorable, status: 500 });
      expect(error.detail).toContain('its status is not stored (storeIf)');
      expect(transactional.size).toBe(0);
    });

    it('refuses a store without runInTransaction with a configuration error naming the fix', async () => {
      await expect(coreWith(store).execute(requestOf({ options }), responseOf(), runner(value(1)).run)).rejects.toThrow(/no runInTransaction\(\)\. Use TypeOrmIdempotencyStore/);
    });
  });
});

describe('storeFailureOf / isStoreUnavailableError', () => {
  it.each([
    ['ECONNREFUSED', Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }), 'unavailable'],
    ['pg Connection terminated', new Error('Connection terminated unexpectedly'), 'unavailable'],
    ['pg-pool connection timeout (server unresponsive)', new Error('Connection terminated due to connection timeout', { cause: new Error('x') }), 'unavailable'],
    ['SQLSTATE class 08', Object.assign(new Error('connection failure'), { code: '08006' }), 'unavailable'],
    ['admin shutdown in a TypeORM driverError', Object.assign(new Error('QueryFailedError'), { driverError: { code: '57P01' } }), 'unavailable'],
    ['pg-pool checkout timeout', new Error('timeout exceeded when trying to connect'), 'pool_exhausted'],
    ['too many connections', Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), 'pool_exhausted'],
    ['lock_timeout in a TypeORM driverError', Object.assign(new Error('QueryFailedError'), { driverError: { code: '55P03' } }), 'timeout'],
    ['statement timeout', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }), 'timeout'],
    ['pg query_timeout', new Error('Query read timeout'), 'timeout'],
    ['deadlock in a cause chain', new Error('outer', { cause: new Error('middle', { cause: Object.assign(new Error('deadlock'), { code: '40P01' }) }) }), 'timeout'],
    ['SQLite busy', Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }), 'timeout'],
    ['SQLite extended locked code', Object.assign(new Error('locked'), { code: 'SQLITE_LOCKED_SHAREDCACHE' }), 'timeout'],
  ])('recognises %s as %s', (_name, error, failure) => {
    expect(storeFailureOf(error)).toBe(failure);
    expect(isStoreUnavailableError(error)).toBe(true);
  });

  it('answers each failure with its own code and never puts the cause in the client-facing detail', () => {
    const secret = 'password authentication failed for user "app" at 10.0.0.7';
    const codes = (['unavailable', 'pool_exhausted', 'timeout'] as const).map((failure) => {
      const error = new IdempotencyStoreUnavailableError(1_000, new Error(secret), failure);
      expect(error).toMatchObject({ status: 503, retryAfterMs: 1_000, failure });
      expect(error.detail).not.toContain('10.0.0.7');
      expect(error.message).toMatch(/\(the cause is attached\)/);
      return error.code;
    });
    expect(codes).toEqual(['idempotency_store_unavailable', 'idempotency_store_pool_exhausted', 'idempotency_store_timeout']);
    // without an explicit kind, the cause decides
    expect(new IdempotencyStoreUnavailableError(1_000, new Error('timeout exceeded when trying to connect')).code).toBe('idempotency_store_pool_exhausted');
    expect(new IdempotencyStoreUnavailableError(1_000, new Error('a bug')).code).toBe('idempotency_store_unavailable');
  });

  it.each([
    ['a plain error', new Error('boom')],
    ['a unique violation', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['a string', 'ECONNREFUSED'],
    ['undefined', undefined],
  ])('does not count %s', (_name, error) => {
    expect(isStoreUnavailableError(error)).toBe(false);
  });

  it('survives a cause cycle', () => {
    const error = new Error('a') as Error & { cause?: unknown };
    error.cause = error;
    expect(isStoreUnavailableError(error)).toBe(false);
  });
});
