import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, spawnApp, stopAll, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { hasRedis, redisUrl, startOwnRedis, testKeyPrefix } from '../../support/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const APP = join('build', 'test', 'fixtures', 'shared-state', 'rate-limit.app.js');
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, APP), join(root, 'test/fixtures/shared-state/rate-limit.app.ts')],
  [join(root, 'dist/http-client/http-client.js'), join(root, 'lib/http-client/http-client.ts')],
  [join(root, 'dist/http-client/origin-gate.js'), join(root, 'lib/http-client/origin-gate.ts')],
  [join(root, 'dist/redis/redis-policy-state.js'), join(root, 'lib/redis/redis-policy-state.ts')],
  [join(root, 'dist/redis/redis-policy-state.scripts.js'), join(root, 'lib/redis/redis-policy-state.scripts.ts')],
  [join(root, 'dist/core/rate-limiter.js'), join(root, 'lib/core/rate-limiter.ts')],
  [join(root, 'dist/core/shared-rate-limiter.js'), join(root, 'lib/core/shared-rate-limiter.ts')],
];

/** The shared limit of the fixture (RATE, BURST) and each instance's during an outage (FALLBACK_*). */
const RATE = 10;
const BURST = 5;
const FALLBACK_RATE = 5;
const FALLBACK_BURST = 2;

/** One request as the dependency saw it: when it arrived (this process's clock, ms) and from which instance. */
interface Arrival {
  readonly at: number;
  readonly path: string;
  readonly instance: string;
}

/**
 * A loopback dependency that stamps every request on arrival. `/busy-once` answers its first request
 * with 429 and `Retry-After: 2`; everything else 200.
 */
async function recordingDependency() {
  const arrivals: Arrival[] = [];
  let busyAnswered = false;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    arrivals.push({ at: performance.now(), path: url.pathname, instance: url.searchParams.get('instance') ?? '?' });
    if (url.pathname === '/busy-once' && !busyAnswered) {
      busyAnswered = true;
      res.writeHead(429, { 'retry-after': '2' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The most arrivals in any window of `windowMs` (each starting at an arrival), among `times` (sorted here). */
function busiestWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let end = 0;
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && sorted[end]! < sorted[start]! + windowMs) end++;
    most = Math.max(most, end - start);
  }
  return most;
}

const events = (instance: SpawnedApp, name: string) =>
  instance.lines.filter((text) => text.startsWith('EVENT ')).map((text) => JSON.parse(text.slice(6)) as { event: string }).filter((event) => event.event === name);

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const drive = async (instance: SpawnedApp, ms: number, concurrency: number, pauseMs?: number) =>
  (await (await fetch(`${instance.url}/drive?ms=${ms}&concurrency=${concurrency}${pauseMs === undefined ? '' : `&pause=${pauseMs}`}`)).json()) as { outcomes: Record<string, number>; maxLagMs: number; maxCallMs: number };

/**
 * Drives every instance at once and measures how late timers fired, in the instances and in this
 * process (the dependency's): the limiter grants turns on Redis' clock, and a request goes out and
 * is stamped late by as much as its sender's and the dependency's event loops lag (a loaded machine).
 * A lag of `L` ms lets a window of `t` ms see the turns of `t + L` ms: `rate × L / 1000` more requests,
 * rounded up. Both figures are printed with the counts.
 */
async function driveAll(instances: readonly SpawnedApp[], ms: number, concurrency: number, meanwhile?: () => Promise<void>, pauseMs?: number) {
  const here = monitorEventLoopDelay({ resolution: 10 });
  here.enable();
  const [reports] = await Promise.all([Promise.all(instances.map((instance) => drive(instance, ms, concurrency, pauseMs))), meanwhile?.()]);
  here.disable();
  const lagMs = Math.max(...reports.map((report) => report.maxLagMs)) + Math.round(here.max / 1e6);
  return {
    outcomes: reports.map((report) => report.outcomes),
    lagMs,
    lagAllowance: (rate: number) => Math.ceil((rate * lagMs) / 1000),
    maxCallMs: reports.map((report) => report.maxCallMs),
    maxLagMs: reports.map((report) => report.maxLagMs),
    /** How late this process's timers (the dependency's) fired, ms. */
    dependencyLagMs: Math.round(here.max / 1e6),
  };
}

const env = (redis: string, dependency: string, extra: Record<string, string> = {}) => ({
  REDIS_URL: redis,
  UPSTREAM: dependency,
  PREFIX: testKeyPrefix('rate-limit'),
  RATE: String(RATE),
  BURST: String(BURST),
  FALLBACK_RATE: String(FALLBACK_RATE),
  FALLBACK_BURST: String(FALLBACK_BURST),
  ...extra,
});

describe.skipIf(!hasRedis)('rateLimit.shared: three app instances (separate Node processes) on one Redis', () => {
  let dependency: Awaited<ReturnType<typeof recordingDependency>>;
  let instances: SpawnedApp[] = [];

  beforeAll(async () => {
    requireBuilt(builtFrom);
    dependency = await recordingDependency();
    const shared = env(redisUrl!, dependency.url);
    instances = await Promise.all(['a', 'b', 'c'].map((name) => spawnApp(root, APP, name, shared)));
  }, 60_000);

  afterAll(async () => {
    await stopAll(instances);
    await dependency?.close();
  });

  it(`never sends more than ${BURST} + ${RATE} × t requests in any t, measured by the dependency over 30 s of three instances each wanting far more`, async () => {
    const { outcomes, lagMs, lagAllowance } = await driveAll(instances, 30_000, 4);
    const hits = dependency.arrivals.filter((arrival) => arrival.path === '/hit');
    const times = hits.map((arrival) => arrival.at);
    // every call got its turn (the deadline of 120 s is never reached), and nothing fell back to in-process limits
    for (const outcome of outcomes) expect(Object.keys(outcome)).toEqual(['success']);
    expect(instances.flatMap((instance) => events(instance, 'shared_state_unavailable'))).toEqual([]);
    const span = Math.max(...times) - Math.min(...times);
    console.log(
      `shared rate limit ${RATE}/s burst ${BURST}, 3 instances × 4 loops: ${hits.length} requests in ${Math.round(span)} ms (bound ${BURST + Math.floor((RATE * span) / 1000)}); busiest 1 s: ${busiestWindow(times, 1_000)}, 5 s: ${busiestWindow(times, 5_000)}, 10 s: ${busiestWindow(times, 10_000)}; per instance: ${['a', 'b', 'c'].map((name) => hits.filter((hit) => hit.instance === name).length).join('/')}; timers late by at most ${lagMs} ms (allowance ${lagAllowance(RATE)})`,
    );
    for (const windowMs of [100, 500, 1_000, 2_000, 5_000, 10_000, 30_000]) {
      expect(busiestWindow(times, windowMs), `busiest window of ${windowMs} ms`).toBeLessThanOrEqual(BURST + (RATE * windowMs) / 1000 + lagAllowance(RATE));
    }
    // without the shared limit each instance alone would send its own burst + rate: three times as much
    expect(busiestWindow(times, 10_000)).toBeLessThan(1.5 * (BURST + RATE * 10));
    // the limit, not the demand, set the pace: the fleet used (nearly) all of it, each instance a share
    expect(hits.length).toBeGreaterThanOrEqual(0.95 * RATE * 30);
    for (const name of ['a', 'b', 'c']) expect(hits.filter((hit) => hit.instance === name).length).toBeGreaterThan(RATE * 30 * 0.2);
  }, 90_000);

  it("one instance's 429 with Retry-After pauses the origin for the others: B's next request reaches the dependency only when the pause ends", async () => {
    const call = async (instance: SpawnedApp, path: string) => (await (await fetch(`${instance.url}/call/${path}`)).json()) as { outcome: string; status?: number; durationMs: number };
    expect(await call(instances[0]!, 'busy-once')).toMatchObject({ outcome: 'http_status', status: 429 });
    const refusedAt = dependency.arrivals.find((arrival) => arrival.path === '/busy-once')!.at;
    const [fromB, fromC] = await Promise.all([call(instances[1]!, 'after-pause'), call(instances[2]!, 'after-pause')]);
    expect(fromB).toMatchObject({ outcome: 'success', status: 200 });
    expect(fromC).toMatchObject({ outcome: 'success', status: 200 });
    const later = dependency.arrivals.filter((arrival) => arrival.path === '/after-pause');
    expect(later.map((arrival) => arrival.instance).sort()).toEqual(['b', 'c']);
    // Retry-After: 2 s, counted from when A read the answer (a few ms after the dependency sent it)
    for (const arrival of later) expect(arrival.at - refusedAt).toBeGreaterThanOrEqual(2_000);
    expect(fromB.durationMs).toBeGreaterThan(1_000);
  }, 30_000);
});

/** A redis-server of the test's own (to kill or freeze), a recording dependency and three instances on them. */
async function fleetOnOwnRedis(extra: Record<string, string>) {
  requireBuilt(builtFrom);
  const server = await startOwnRedis();
  const dependency = await recordingDependency();
  const shared = env(server.url, dependency.url, extra);
  const instances = await Promise.all(['a', 'b', 'c'].map((name) => spawnApp(root, APP, name, shared)));
  return { server, dependency, instances };
}

describe.skipIf(!hasRedis)('rateLimit.shared when Redis is killed mid-run (three instances, a Redis of this file)', () => {
  let server: Awaited<ReturnType<typeof startOwnRedis>>;
  let dependency: Awaited<ReturnType<typeof recordingDependency>>;
  let instances: SpawnedApp[] = [];

  beforeAll(async () => {
    // the documented default maxWait: an answer later than 50 ms counts as slow
    ({ server, dependency, instances } = await fleetOnOwnRedis({ MAX_WAIT: '50' }));
  }, 60_000);

  afterEach(async () => {
    await server.start();
  });

  afterAll(async () => {
    await stopAll(instances);
    await server?.stop();
    await dependency?.close();
  });

  it(`each instance falls back to its own ${FALLBACK_BURST} + ${FALLBACK_RATE} × t within a moment of the kill; before it the fleet kept ${BURST} + ${RATE} × t`, async () => {
    const concurrency = 2;
    let killedAt = 0;
    let fellBackWithin = 0;
    const { outcomes, lagMs, lagAllowance } = await driveAll(instances, 8_000, concurrency, async () => {
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      killedAt = performance.now();
      await server.kill();
      await until(() => instances.every((instance) => events(instance, 'shared_state_unavailable').length === 1), 'every instance to fall back', 2_000);
      fellBackWithin = performance.now() - killedAt;
    });
    for (const outcome of outcomes) expect(Object.keys(outcome)).toEqual(['success']);
    const hits = dependency.arrivals.filter((arrival) => arrival.path === '/hit');
    const before = hits.filter((hit) => hit.at < killedAt).map((hit) => hit.at);
    // turns reserved from Redis before the kill still go out, at most `concurrency` per instance,
    // each at most (3 × concurrency) intervals ahead: after that only the fallback buckets decide
    const drained = killedAt + (3 * concurrency * 1000) / RATE + 200;
    const after = hits.filter((hit) => hit.at >= drained);
    console.log(
      `Redis killed after 3 s: every instance fell back within ${Math.round(fellBackWithin)} ms; before: ${before.length} requests, busiest 1 s ${busiestWindow(before, 1_000)}; after: ${after.length}, busiest 1 s per instance ${['a', 'b', 'c'].map((name) => busiestWindow(after.filter((hit) => hit.instance === name).map((hit) => hit.at), 1_000)).join('/')}; timers late by at most ${lagMs} ms`,
    );
    expect(busiestWindow(before, 1_000)).toBeLessThanOrEqual(BURST + RATE + lagAllowance(RATE));
    for (const name of ['a', 'b', 'c']) {
      const own = after.filter((hit) => hit.instance === name).map((hit) => hit.at);
      expect(own.length).toBeGreaterThan(0);
      expect(busiestWindow(own, 1_000), `instance ${name} after the kill`).toBeLessThanOrEqual(FALLBACK_BURST + FALLBACK_RATE + lagAllowance(FALLBACK_RATE));
    }
  }, 60_000);
});

describe.skipIf(!hasRedis)('rateLimit.shared when Redis hangs (SIGSTOP) mid-run (three instances, a Redis of this file)', () => {
  const MAX_WAIT = 50;
  let server: Awaited<ReturnType<typeof startOwnRedis>>;
  let dependency: Awaited<ReturnType<typeof recordingDependency>>;
  let instances: SpawnedApp[] = [];

  beforeAll(async () => {
    // a limit no call waits for, shared or not: a call's time is its wait for Redis and the request
    ({ server, dependency, instances } = await fleetOnOwnRedis({ MAX_WAIT: String(MAX_WAIT), RATE: '10000', BURST: '1000', FALLBACK_RATE: '10000', FALLBACK_BURST: '1000' }));
  }, 60_000);

  afterAll(async () => {
    server?.thaw();
    await stopAll(instances);
    await server?.stop();
    await dependency?.close();
  });

  it(`no call of any instance waits for the hung Redis longer than maxWait (${MAX_WAIT} ms); every instance then decides without it`, async () => {
    let frozenAt = 0;
    // every instance calls every 20 ms: as often as a busy app, without loading the machine itself
    const { outcomes, maxCallMs, maxLagMs, dependencyLagMs } = await driveAll(
      instances,
      5_000,
      2,
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        server.freeze();
        frozenAt = performance.now();
        await until(() => instances.every((instance) => events(instance, 'shared_state_unavailable').length === 1), 'every instance to stop asking Redis', 3_000);
      },
      20,
    );
    for (const outcome of outcomes) expect(Object.keys(outcome)).toEqual(['success']);
    const after = dependency.arrivals.filter((arrival) => arrival.path === '/hit' && arrival.at > frozenAt);
    console.log(
      `Redis hung after 1.5 s: longest call per instance ${maxCallMs.join('/')} ms (maxWait ${MAX_WAIT} ms; timers late by at most ${maxLagMs.join('/')} ms, the dependency's ${dependencyLagMs} ms); ${after.length} requests after the freeze`,
    );
    for (const name of ['a', 'b', 'c']) expect(after.filter((hit) => hit.instance === name).length).toBeGreaterThan(10);
    // maxWait, plus how late that instance's and the dependency's timers fired, plus one loopback request
    maxCallMs.forEach((ms, index) => expect(ms, `instance ${'abc'[index]}`).toBeLessThanOrEqual(MAX_WAIT + maxLagMs[index]! + dependencyLagMs + 100));
  }, 60_000);
});
