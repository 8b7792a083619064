import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { hasRedis, redisUrl, startOwnRedis, testKeyPrefix } from '../../support/redis.js';
import { CircuitOpenError } from '../../../lib/core/errors.js';
import type { CircuitBreakerStrategy } from '../../../lib/core/options.js';
import type { PolicyEnvironment } from '../../../lib/core/policy.js';
import { rootContext } from '../../../lib/core/policy.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import type { SharedBreakerOutcome, SharedBreakerSettings, SharedBreakerState } from '../../../lib/core/shared-policy-state.js';
import { resolveCircuitBreakerOptions } from '../../../lib/core/validate.js';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import type { NodeRedisClient } from '../../../lib/redis/redis-connection.js';
import { RedisPolicyState } from '../../../lib/redis/redis-policy-state.js';

const F: SharedBreakerOutcome = { generation: -1, failure: true, slow: false, probe: false };
const S: SharedBreakerOutcome = { generation: -1, failure: false, slow: false, probe: false };
const at = (generation: number, outcome: SharedBreakerOutcome, probe = false): SharedBreakerOutcome => ({ ...outcome, generation, probe });

const fail = () => Promise.reject(new Error('down'));

// generous: a pub/sub round trip takes milliseconds, but a loaded CI runner can stall one for seconds
async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function settings(strategy: CircuitBreakerStrategy): SharedBreakerSettings {
  return resolveCircuitBreakerOptions({ strategy, halfOpenProbes: 2 });
}

describe.skipIf(!hasRedis)('RedisPolicyState scripts (real redis-server)', () => {
  let client: Redis;
  const states: RedisPolicyState[] = [];
  /** A backend on its own key prefix, its clock set by hand (`time.now`). */
  const backend = (prefix = testKeyPrefix('policy-state'), time = { now: 1_000_000 }, on: Redis = client) => {
    const state = new RedisPolicyState({ client: on, prefix });
    state.now = () => time.now;
    states.push(state);
    return { state, prefix, time };
  };
  /** Another instance on the same keys and clock as `first`. */
  const sibling = (first: ReturnType<typeof backend>, on: Redis = client) => backend(first.prefix, first.time, on).state;

  beforeAll(() => {
    client = new Redis(redisUrl!, { lazyConnect: false });
  });
  afterAll(async () => {
    await Promise.all(states.map((state) => state.close()));
    client.disconnect();
  });

  it("leaves a subscriber of the app's clean on close: used again, it carries one listener, not one per state that ever used it", async () => {
    const subscriber = new Redis(redisUrl!);
    onTestFinished(() => subscriber.disconnect());
    const prefix = testKeyPrefix('policy-state');
    const options = settings({ type: 'consecutive', threshold: 3 });
    const first = new RedisPolicyState({ client, subscriber, prefix });
    first.circuitBreaker('dep', options, () => undefined);
    await until(() => subscriber.listenerCount('message') === 1, 'the first subscription');
    await first.close();
    expect(subscriber.listenerCount('message')).toBe(0);
    const second = new RedisPolicyState({ client, subscriber, prefix });
    states.push(second);
    second.circuitBreaker('dep', options, () => undefined);
    await until(() => subscriber.listenerCount('message') >= 1, 'the second subscription');
    expect(subscriber.listenerCount('message')).toBe(1);
  });

  describe('breaker', () => {
    it('consecutive: failures from two instances add up in arrival order; a success in between starts over', async () => {
      const first = backend();
      const { state: a, time } = first;
      const b = sibling(first);
      const options = settings({ type: 'consecutive', threshold: 4 });
      const onA = a.circuitBreaker('dep', options, () => undefined);
      const onB = b.circuitBreaker('dep', options, () => undefined);
      expect((await onA.record([F, F], 500)).state).toBe('closed');
      expect((await onB.record([F, S], 500)).state).toBe('closed');
      expect((await onA.record([F, F, F], 500)).state).toBe('closed');
      const opened = await onB.record([F], 500);
      expect(opened).toMatchObject({ state: 'open', remainingMs: 500, reason: 'consecutive', opens: 1 });
      time.now += 200;
      expect(await onA.read()).toMatchObject({ state: 'open', remainingMs: 300, generation: opened.generation });
    });

    it('count: judges the last `size` outcomes of all instances, evicting the oldest', async () => {
      const { state } = backend();
      const breaker = state.circuitBreaker('dep', settings({ type: 'count', size: 4, minimumCalls: 4, failureRatio: 0.5 }), () => undefined);
      // [F S S] is under minimumCalls; [F S S S] is 25 % failures; [S S S F] too; [S S F F] is 50 %
      expect((await breaker.record([F, S, S], 100)).state).toBe('closed');
      expect((await breaker.record([S], 100)).state).toBe('closed');
      expect((await breaker.record([F], 100)).state).toBe('closed');
      expect(await breaker.record([F], 100)).toMatchObject({ state: 'open', reason: 'failure_rate' });
    });

    it('time: only outcomes of the last window (in tenths) count, on the script clock', async () => {
      const { state, time } = backend(undefined, { now: 10_000 });
      const breaker = state.circuitBreaker('dep', settings({ type: 'time', window: 1_000, minimumThroughput: 4, failureRatio: 0.5 }), () => undefined);
      expect((await breaker.record([F, F, F], 100)).state).toBe('closed');
      time.now += 1_000; // the three failures left the window
      expect((await breaker.record([F, S, S], 100)).state).toBe('closed');
      time.now += 900; // still inside: 1 failure of 4 calls, then 2 of 5
      expect((await breaker.record([S, F], 100)).state).toBe('closed');
      expect(await breaker.record([F], 100)).toMatchObject({ state: 'open', reason: 'failure_rate' });
    });

    it('ignores outcomes of an older generation, re-opens on a failed probe and closes after halfOpenProbes successes', async () => {
      const { state, time } = backend();
      const breaker = state.circuitBreaker('dep', settings({ type: 'consecutive', threshold: 1 }), () => undefined);
      const first = await breaker.record([F], 1_000);
      expect(first.state).toBe('open');
      // a call admitted before the open says nothing now
      expect((await breaker.record([at(first.generation - 1, F)], 1_000)).generation).toBe(first.generation);
      time.now += 1_000;
      const reopened = await breaker.record([at(first.generation, F, true)], 2_000);
      expect(reopened).toMatchObject({ state: 'open', reason: 'probe_failed', opens: 2, remainingMs: 2_000 });
      expect(reopened.generation).toBe(first.generation + 1);
      time.now += 2_000;
      expect((await breaker.record([at(reopened.generation, S, true)], 1)).state).toBe('open');
      const closed = await breaker.record([at(reopened.generation, S, true)], 1);
      expect(closed).toMatchObject({ state: 'closed', opens: 0, generation: reopened.generation + 1 });
    });

    it('publishes every transition to the other instances (even when their client has no offline queue)', async () => {
      const first = backend();
      const { state: a, time } = first;
      const strict = new Redis(redisUrl!, { enableOfflineQueue: false });
      onTestFinished(() => strict.disconnect());
      const b = sibling(first, strict);
      const pushed: SharedBreakerState[] = [];
      const options = settings({ type: 'consecutive', threshold: 2 });
      b.circuitBreaker('dep', options, (state) => pushed.push(state));
      const onA = a.circuitBreaker('dep', options, () => undefined);
      // let B's subscription reach the server before the transition is published
      await until(() => (b as unknown as { subscribed?: unknown }).subscribed !== undefined, 'the subscription');
      await (b as unknown as { subscribed: Promise<unknown> }).subscribed;
      // once subscribed, B reads the state it may have missed meanwhile: closed
      await until(() => pushed.length === 1, 'the read after subscribing');
      expect(pushed[0]).toMatchObject({ state: 'closed' });
      await onA.record([F, F], 700);
      await until(() => pushed.length === 2, 'the push of the open');
      expect(pushed[1]).toMatchObject({ state: 'open', remainingMs: 700, reason: 'consecutive' });
      await onA.reset();
      await until(() => pushed.length === 3, 'the push of the reset');
      expect(pushed[2]).toMatchObject({ state: 'closed' });
    });

    it('an instance that subscribes after a transition was published still learns it', async () => {
      const first = backend();
      const { state: a } = first;
      const b = sibling(first);
      const options = settings({ type: 'consecutive', threshold: 2 });
      const onA = a.circuitBreaker('dep', options, () => undefined);
      await onA.record([F, F], 700);
      const pushed: SharedBreakerState[] = [];
      b.circuitBreaker('dep', options, (state) => pushed.push(state));
      await until(() => pushed.length === 1, 'the read after subscribing');
      expect(pushed[0]).toMatchObject({ state: 'open', reason: 'consecutive' });
    });

    it('instances that read a new key at different times agree on its generation (their outcomes count)', async () => {
      const first = backend();
      const { state: a, time } = first;
      const b = sibling(first);
      const options = settings({ type: 'consecutive', threshold: 2 });
      const onA = a.circuitBreaker('dep', options, () => undefined);
      const onB = b.circuitBreaker('dep', options, () => undefined);
      const readByA = await onA.read();
      time.now += 7;
      const readByB = await onB.read();
      expect(readByB.generation).toBe(readByA.generation);
      await onA.record([at(readByA.generation, F)], 100);
      expect((await onB.record([at(readByB.generation, F)], 100)).state).toBe('open');
    });

    it('a key created after the old one expired starts at a newer generation than any before it', async () => {
      const { state, prefix, time } = backend();
      const breaker = state.circuitBreaker('dep', settings({ type: 'consecutive', threshold: 1 }), () => undefined);
      const before = await breaker.record([F], 100);
      await client.del(`${prefix}{dep}:cb`);
      time.now += 5;
      expect((await breaker.read()).generation).toBeGreaterThan(before.generation);
    });
  });

  describe('retry budget', () => {
    it('grants exactly ratio × calls of all instances + floor in the window, then refuses', async () => {
      const first = backend();
      const { state: a, time } = first;
      const b = sibling(first);
      const window = { ratio: 0.2, window: 1_000, minRetriesPerSecond: 5 };
      const onA = a.retryBudget('dep', window);
      const onB = b.retryBudget('dep', window);
      await onA.deposit(30);
      await onB.deposit(20);
      let granted = 0;
      // 0.2 × 50 + 5 × 1 = 15, whoever asks
      for (let i = 0; i < 20; i++) if (await (i % 2 === 0 ? onA : onB).acquire(0)) granted++;
      expect(granted).toBe(15);
      // calls deposited with the request count before it is judged
      expect(await onA.acquire(5)).toBe(true);
      expect(await onB.acquire(0)).toBe(false);
    });

    it('forgets calls and retries once they leave the window (a bucket late, never early)', async () => {
      const { state, time } = backend();
      const budget = state.retryBudget('dep', { ratio: 0, window: 1_000, minRetriesPerSecond: 2 });
      expect(await budget.acquire(0)).toBe(true);
      expect(await budget.acquire(0)).toBe(true);
      expect(await budget.acquire(0)).toBe(false);
      time.now += 1_000;
      expect(await budget.acquire(0)).toBe(false);
      time.now += 50;
      expect(await budget.acquire(0)).toBe(true);
    });
  });
});

describe.skipIf(!hasRedis).each(['ioredis', 'node-redis'] as const)('shared policies of several registries (instances) on one Redis, through %s', (library) => {
  let client: Redis | NodeRedisClient;
  /** Reads the keys (the same server, whichever client the backends use). */
  let observer: Redis;
  const backends: RedisPolicyState[] = [];
  const registries: PolicyRegistry[] = [];

  function instance(prefix: string, clock = new FakeClock()) {
    const events = new EventRecorder();
    const env: PolicyEnvironment = { clock, random: seededRandom(1), events: events.sink };
    const sharedState = new RedisPolicyState({ client, prefix });
    backends.push(sharedState);
    const registry = new PolicyRegistry(env, { sharedState });
    registries.push(registry);
    return { registry, events, clock };
  }

  beforeAll(async () => {
    observer = new Redis(redisUrl!);
    client = library === 'ioredis' ? observer : await createClient({ url: redisUrl!, disableOfflineQueue: true }).connect();
  });
  afterAll(async () => {
    for (const registry of registries) registry.dispose();
    await Promise.all(backends.map((backend) => backend.close()));
    if (client !== observer) (client as NodeRedisClient).destroy();
    observer.disconnect();
  });

  it('a breaker opens on both instances once they reach the threshold together (each alone stays under it)', async () => {
    const prefix = testKeyPrefix('shared-breaker');
    const a = instance(prefix);
    const b = instance(prefix);
    const options = { strategy: { type: 'consecutive', threshold: 4 } as const, breakDuration: 10_000, shared: true };
    const onA = a.registry.circuitBreaker('dep', options);
    const onB = b.registry.circuitBreaker('dep', options);
    expect(onA.shared && onB.shared).toBe(true);
    for (const breaker of [onA, onA, onB, onB]) await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(onA.state).toBe('closed');
    await a.clock.advance(20);
    await b.clock.advance(20);
    await until(() => onA.state === 'open' && onB.state === 'open', 'both breakers to open');
    await expect(onA.execute(fail, rootContext('dep'))).rejects.toBeInstanceOf(CircuitOpenError);
    await expect(onB.execute(fail, rootContext('dep'))).rejects.toBeInstanceOf(CircuitOpenError);
    expect(a.events.named('breaker_opened')).toHaveLength(1);
    expect(b.events.named('breaker_opened')).toHaveLength(1);
  });

  it('an in-process breaker with the same key stays per instance', async () => {
    const prefix = testKeyPrefix('local-breaker');
    const a = instance(prefix);
    const breaker = a.registry.circuitBreaker('dep', { strategy: { type: 'consecutive', threshold: 1 } });
    expect(breaker.shared).toBe(false);
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('open');
    expect(await observer.keys(`${prefix}*`)).toEqual([]);
  });

  it('a retry budget bounds the retries of both instances together', async () => {
    const prefix = testKeyPrefix('shared-budget');
    const a = instance(prefix);
    const b = instance(prefix);
    const budget = { ratio: 0.5, window: 10_000, minRetriesPerSecond: 0, shared: true };
    const onA = a.registry.retryPermits('dep', budget);
    const onB = b.registry.retryPermits('dep', budget);
    for (let i = 0; i < 10; i++) onA.recordCall();
    for (let i = 0; i < 10; i++) onB.recordCall();
    await a.clock.advance(20);
    await b.clock.advance(20);
    // 0.5 × the 20 calls of both: A alone may take all 10 (its in-process budget would stop at 5),
    // and then B gets none (its in-process budget would still give 5)
    let grantedA = 0;
    for (let i = 0; i < 15; i++) if (await onA.tryAcquireRetry()) grantedA++;
    expect(grantedA).toBe(10);
    expect(await onB.tryAcquireRetry()).toBe(false);
  });
});

describe.skipIf(!hasRedis)('fallback to in-process state when Redis is down or slow', () => {
  let server: Awaited<ReturnType<typeof startOwnRedis>>;
  let client: Redis | NodeRedisClient;
  /** Whether the client is connected, in its library's terms. */
  let ready: () => boolean;
  let backend: RedisPolicyState;
  let registry: PolicyRegistry;

  beforeAll(async () => {
    server = await startOwnRedis();
  });
  afterEach(async () => {
    registry?.dispose();
    await backend?.close();
    if (client instanceof Redis) client.disconnect();
    else client?.destroy();
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  function setUp(clock: FakeClock, library: 'ioredis' | 'node-redis' = 'ioredis') {
    if (library === 'ioredis') {
      const ioredis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 });
      client = ioredis;
      ready = () => ioredis.status === 'ready';
    } else {
      const nodeRedis = createClient({ url: server.url, disableOfflineQueue: true, socket: { reconnectStrategy: () => 20 } });
      nodeRedis.on('error', () => undefined);
      nodeRedis.connect().catch(() => undefined);
      client = nodeRedis;
      ready = () => nodeRedis.isReady;
    }
    backend = new RedisPolicyState({ client, prefix: testKeyPrefix('fallback'), maxWait: 40, recoveryInterval: 500 });
    const events = new EventRecorder();
    registry = new PolicyRegistry({ clock, random: seededRandom(1), events: events.sink }, { sharedState: backend });
    return events;
  }

  it.each(['ioredis', 'node-redis'] as const)('Redis down: the breaker judges in-process, one event per transition, and shared state decides again after recovery (%s)', async (library) => {
    const clock = new FakeClock();
    const events = setUp(clock, library);
    await until(() => ready(), 'the client to connect');
    const breaker = registry.circuitBreaker('dep', { strategy: { type: 'consecutive', threshold: 3 }, breakDuration: 1_000, shared: true });
    await server.halt();
    await until(() => !ready(), 'the client to notice');
    // the first outcome's batch fails at once (no offline queue): in-process from then on
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    await clock.advance(20);
    await until(() => events.named('shared_state_unavailable').length === 1, 'the unavailable event');
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('closed');
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('open');
    expect(events.named('shared_state_unavailable')).toHaveLength(1);

    await server.start();
    await until(() => ready(), 'the client to reconnect');
    await clock.advance(500);
    await until(() => events.named('shared_state_recovered').length === 1, 'the recovered event');
    // the open decided alone lasts its own break, then the instance probes; outcomes go to Redis again
    await clock.advance(1_000);
    await breaker.execute(() => Promise.resolve('ok'), rootContext('dep'));
    expect(breaker.state).toBe('closed');
    // the probe's answer tells the instance the generation of the restarted server's state; calls
    // admitted before it would be judged stale
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < 3; i++) await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('closed'); // the shared window decides now, after its batch
    await clock.advance(20);
    await until(() => breaker.state === 'open', 'the shared window to open it');
    expect(events.named('shared_state_unavailable')).toHaveLength(1);
    expect(events.named('shared_state_recovered')).toHaveLength(1);
  });

  it("Redis down: the subscriber connection it opened (ioredis) fails its reconnects quietly, not as '[ioredis] Unhandled error event' lines", async () => {
    setUp(new FakeClock());
    await until(() => ready(), 'the client to connect');
    const ioredis = client as Redis;
    // the app's own client: listening to its errors is the app's job
    ioredis.on('error', () => undefined);
    let subscriber: Redis | undefined;
    const duplicate = ioredis.duplicate.bind(ioredis);
    ioredis.duplicate = (override) => (subscriber = duplicate(override));
    // ioredis writes an 'error' nobody listens to with console.error
    const consoleError = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    onTestFinished(() => consoleError.mockRestore());
    registry.circuitBreaker('dep', { strategy: { type: 'consecutive', threshold: 3 }, shared: true });
    await until(() => subscriber?.status === 'ready', 'the subscriber to connect');
    let reconnects = 0;
    subscriber!.on('reconnecting', () => reconnects++);
    await server.halt();
    // every attempt after the first is refused (ECONNREFUSED, an 'error' event) before it reconnects again
    await until(() => reconnects >= 3, 'three reconnect attempts of the subscriber');
    const unhandled = consoleError.mock.calls.filter(([first]) => String(first).startsWith('[ioredis] Unhandled error event'));
    expect(unhandled).toEqual([]);
  });

  it('Redis slow: a retry waits at most maxWait for its permit, then the in-process budget answers', async () => {
    const clock = new FakeClock();
    const events = setUp(clock);
    await until(() => ready(), 'the client to connect');
    const permits = registry.retryPermits('dep', { ratio: 0, window: 1_000, minRetriesPerSecond: 1, shared: true });
    const pauser = new Redis(server.url);
    try {
      await pauser.call('CLIENT', 'PAUSE', '300', 'ALL');
      const answer = permits.tryAcquireRetry();
      expect(answer).toBeInstanceOf(Promise);
      let settled: boolean | undefined;
      void (answer as Promise<boolean>).then((granted) => (settled = granted));
      await clock.advance(39);
      expect(settled).toBeUndefined();
      await clock.advance(1);
      expect(settled).toBe(true); // the in-process budget's floor (1 retry per second of window)
      expect(events.named('shared_state_unavailable')).toHaveLength(0); // one late answer is not an outage
      for (let slow = 2; slow <= 3; slow++) {
        const late = permits.tryAcquireRetry() as Promise<boolean>;
        await clock.advance(40);
        await expect(late).resolves.toBe(false);
      }
      expect(events.named('shared_state_unavailable')).toHaveLength(1);
      // while down, no round trip at all: the in-process answer is synchronous
      expect(permits.tryAcquireRetry()).toBe(false);
    } finally {
      pauser.disconnect();
    }
  });
});

describe('RedisPolicyState options', () => {
  const client = new Redis({ lazyConnect: true });
  afterAll(() => client.disconnect());

  it.each([
    ['no client', {}, /RedisPolicyState needs `client`/],
    ['a client of neither library', { client: { ping: async () => 'PONG' } }, /RedisPolicyState got a client that is neither an ioredis Redis\/Cluster nor a node-redis client/],
    ['a subscriber of the other library', { client, subscriber: createClient() }, /a `client` and a `subscriber` of different libraries .*; pass a subscriber of the client's library, or none/],
    ['a maxWait of 0', { client, maxWait: 0 }, /maxWait must be a positive integer \(got 0\); e\.g\. maxWait: 50/],
    ['a fractional flushInterval', { client, flushInterval: 2.5 }, /flushInterval must be a positive integer \(got 2\.5\)/],
    ['a negative recoveryInterval', { client, recoveryInterval: -1 }, /recoveryInterval must be a positive integer/],
    ['slowAnswersBeforeFallback of NaN', { client, slowAnswersBeforeFallback: Number.NaN }, /slowAnswersBeforeFallback must be a positive integer \(got NaN\)/],
  ])('refuses %s at construction with a message naming the fix', (_name, options, message) => {
    expect(() => new RedisPolicyState(options as ConstructorParameters<typeof RedisPolicyState>[0])).toThrow(message);
  });

  it('takes the documented defaults', () => {
    expect(new RedisPolicyState({ client })).toMatchObject({ maxWait: 50, slowAnswersBeforeFallback: 3, flushInterval: 20, recoveryInterval: 1000 });
  });
});
