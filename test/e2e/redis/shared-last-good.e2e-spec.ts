import 'reflect-metadata';
import { Controller, Get, Injectable, Param, Post, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { CircuitBreaker, Fallback, Idempotent, ResilienceEvents, ResilienceModule, type ResilienceEvent } from 'nest-resilience';
import { RedisPolicyState } from 'nest-resilience/redis';
import { FakeClock } from 'nest-resilience/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';
import { hasRedis, redisUrl, startOwnRedis, testKeyPrefix } from '../../support/redis.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** The dependency of every instance: up or down for all of them, as one provider's API would be. */
const dependency = { down: false, calls: 0 };

@Injectable()
class Rates {
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 100 } })
  @Fallback({ lastGood: { ttl: 10_000, maxEntries: 2, shared: true, key: (currency: string) => currency } })
  async rate(currency: string): Promise<{ currency: string; n: number }> {
    if (dependency.down) throw reset();
    return { currency, n: ++dependency.calls };
  }

  /** A value JSON cannot carry: kept by the instance that produced it only. */
  @Fallback({ lastGood: { ttl: 10_000, shared: true } })
  async big(): Promise<{ value: bigint }> {
    if (dependency.down) throw reset();
    return { value: 10n };
  }
}

@Controller('rates')
class RatesController {
  constructor(private readonly rates: Rates) {}

  @Get(':currency')
  @Fallback({ lastGood: { ttl: 30_000, shared: true } })
  get(@Param('currency') currency: string) {
    if (dependency.down) throw reset();
    return { currency, rate: 1.08 };
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Keys under `prefix` (SCAN: the test's own keys only). */
async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

describe.skipIf(!hasRedis)('@Fallback({ lastGood: { shared: true } }) on RedisPolicyState (two app instances, real redis-server)', () => {
  let client: Redis;
  const apps: INestApplication[] = [];

  beforeAll(() => {
    client = new Redis(redisUrl!);
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    dependency.down = false;
    dependency.calls = 0;
  });
  afterAll(() => {
    client.disconnect();
  });

  /** Two instances on one key prefix; Redis' time and both module clocks are one fake clock. */
  async function fleet() {
    const clock = new FakeClock(1_700_000_000_000);
    const prefix = testKeyPrefix('last-good');
    const instances = [];
    for (let n = 0; n < 2; n++) {
      const sharedState = new RedisPolicyState({ client, prefix, maxWait: 2_000 });
      sharedState.now = () => clock.now();
      const app = await createApp('express', { imports: [ResilienceModule.forRoot({ clock, sharedState })], controllers: [RatesController], providers: [Rates] });
      apps.push(app);
      const events: ResilienceEvent[] = [];
      app.get(ResilienceEvents).subscribe((event) => events.push(event));
      instances.push({ app, rates: app.get(Rates), events });
    }
    return { clock, prefix, a: instances[0]!, b: instances[1]! };
  }

  it("serves another instance's last good result while the dependency fails, never at or past ttl, and Redis expires it at ttl", async () => {
    const { clock, prefix, a, b } = await fleet();
    expect(await a.rates.rate('eur')).toEqual({ currency: 'eur', n: 1 });
    const entry = `${prefix}{Rates.rate}:lg:`;
    await until(async () => (await keysUnder(client, entry)).length === 1, 'the result to reach Redis');
    // Redis drops the entry itself `ttl` after it was produced
    const [key] = await keysUnder(client, entry);
    const pttl = await client.pttl(key!);
    expect(pttl).toBeGreaterThan(9_000);
    expect(pttl).toBeLessThanOrEqual(10_000);
    dependency.down = true;
    await clock.advance(9_999);
    // B never saw a success of its own
    expect(await b.rates.rate('eur')).toEqual({ currency: 'eur', n: 1 });
    expect(b.events.filter((event) => event.event === 'fallback_used')).toHaveLength(1);
    // another key has none anywhere: the failure goes through, and no fallback_used is reported
    await expect(b.rates.rate('usd')).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(b.events.filter((event) => event.event === 'fallback_used')).toHaveLength(1);
    await clock.advance(1);
    await expect(b.rates.rate('eur')).rejects.toMatchObject({ code: 'ECONNRESET' });
    await expect(a.rates.rate('eur')).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('a route answers it with Resilience-Stale: <age in seconds> on the instance that never produced it', async () => {
    const { clock, prefix, a, b } = await fleet();
    const fresh = await request(a.app.getHttpServer()).get('/rates/eur').expect(200);
    expect(fresh.headers['resilience-stale']).toBeUndefined();
    await until(async () => (await keysUnder(client, `${prefix}{RatesController.get}:lg:`)).length === 1, 'the result to reach Redis');
    dependency.down = true;
    await clock.advance(12_500);
    const stale = await request(b.app.getHttpServer()).get('/rates/eur').expect(200);
    expect(stale.body).toEqual({ currency: 'eur', rate: 1.08 });
    expect(stale.headers['resilience-stale']).toBe('12');
    // another URL has none anywhere: the failure is answered as usual
    await request(b.app.getHttpServer()).get('/rates/gbp').expect(503);
  });

  it('serves the youngest result of the fleet: a newer success elsewhere replaces an older one kept here', async () => {
    const { clock, a, b } = await fleet();
    expect(await b.rates.rate('eur')).toMatchObject({ n: 1 });
    await clock.advance(5_000);
    expect(await a.rates.rate('eur')).toMatchObject({ n: 2 });
    await until(async () => {
      dependency.down = true;
      const answer = await b.rates.rate('eur');
      dependency.down = false;
      return answer.n === 2;
    }, "B to serve A's younger result");
  });

  it('keeps at most maxEntries results per method in Redis, the least recently used dropped first (and its entry with it)', async () => {
    const { prefix, a, b } = await fleet();
    await a.rates.rate('eur');
    await a.rates.rate('usd');
    // a lookup makes eur the most recently used: usd goes when gbp comes
    dependency.down = true;
    expect(await b.rates.rate('eur')).toMatchObject({ currency: 'eur' });
    dependency.down = false;
    await a.rates.rate('gbp');
    const index = `${prefix}{Rates.rate}:lg`;
    await until(async () => (await client.zcard(index)) === 2 && (await keysUnder(client, `${index}:`)).length === 2, 'the index to hold two entries');
    dependency.down = true;
    expect(await b.rates.rate('eur')).toMatchObject({ currency: 'eur' });
    expect(await b.rates.rate('gbp')).toMatchObject({ currency: 'gbp' });
    await expect(b.rates.rate('usd')).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('a result JSON cannot carry stays with the instance that produced it', async () => {
    const { a, b } = await fleet();
    expect(await a.rates.big()).toEqual({ value: 10n });
    dependency.down = true;
    expect(await a.rates.big()).toEqual({ value: 10n });
    await expect(b.rates.big()).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('is refused at start-up on an @Idempotent() route, and without a shared state backend', async () => {
    @Controller('payments')
    class PaymentsController {
      @Post()
      @Idempotent()
      @Fallback({ lastGood: { ttl: 1_000, shared: true } })
      create() {
        return { ok: true };
      }
    }
    await expect(createApp('express', { imports: [ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) })], controllers: [PaymentsController] })).rejects.toThrow(
      /@Fallback\(\{ lastGood \}\) on POST PaymentsController.create would answer an @Idempotent\(\) request with an older result/,
    );
    await expect(createApp('express', { imports: [ResilienceModule.forRoot()], providers: [Rates], controllers: [RatesController] })).rejects.toThrow(
      /@Fallback\(\) on \w+\.\w+ sets lastGood.shared: true, but no shared state backend is configured\. Pass one to ResilienceModule.forRoot\(\{ sharedState/,
    );
  });
});

describe.skipIf(!hasRedis)('lastGood.shared when Redis fails (a redis-server of this file, real clock)', () => {
  const MAX_WAIT = 50;
  let server: Awaited<ReturnType<typeof startOwnRedis>>;
  let client: Redis | undefined;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    server = await startOwnRedis();
  });
  afterEach(async () => {
    server.thaw();
    await app?.close();
    app = undefined;
    client?.disconnect();
    dependency.down = false;
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function start(ttl?: number) {
    client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 });
    client.on('error', () => undefined);
    await until(() => client!.status === 'ready', 'the client to connect');
    const prefix = testKeyPrefix('last-good-outage');
    const sharedState = new RedisPolicyState({ client, prefix, maxWait: MAX_WAIT, recoveryInterval: 300 });
    @Injectable()
    class Quotes {
      @Fallback({ lastGood: { ttl: ttl ?? 60_000, shared: true } })
      async quote(symbol: string): Promise<{ symbol: string }> {
        if (dependency.down) throw reset();
        return { symbol };
      }
    }
    app = await createApp('express', { imports: [ResilienceModule.forRoot({ sharedState })], providers: [Quotes] });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    return { quotes: app.get(Quotes), events, prefix };
  }

  it('Redis expires an entry ttl after it was produced (real time)', async () => {
    const { quotes, prefix } = await start(300);
    await quotes.quote('acme');
    await until(async () => (await keysUnder(client!, `${prefix}{Quotes.quote}:lg:`)).length === 1, 'the entry to reach Redis');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await keysUnder(client!, prefix)).toEqual([]);
  });

  it('Redis killed: a success still succeeds, and a failure is answered from this instance’s own results', async () => {
    const { quotes, events } = await start();
    await quotes.quote('acme');
    await server.kill();
    await until(() => client!.status !== 'ready', 'the client to notice');
    // keeping a result never fails the call
    expect(await quotes.quote('globex')).toEqual({ symbol: 'globex' });
    dependency.down = true;
    expect(await quotes.quote('acme')).toEqual({ symbol: 'acme' });
    expect(await quotes.quote('globex')).toEqual({ symbol: 'globex' });
    await expect(quotes.quote('initech')).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(events.filter((event) => event.event === 'shared_state_unavailable')).toHaveLength(1);
  });

  it('Redis hung (SIGSTOP): a failure waits at most maxWait for Redis, then this instance’s own result answers', async () => {
    const { quotes } = await start();
    await quotes.quote('acme');
    server.freeze();
    dependency.down = true;
    const started = performance.now();
    expect(await quotes.quote('acme')).toEqual({ symbol: 'acme' });
    const waited = performance.now() - started;
    // the maxWait timer fires on a loaded event loop a little late, never a Redis round trip late
    expect(waited).toBeLessThan(MAX_WAIT + 150);
    await expect(quotes.quote('initech')).rejects.toMatchObject({ code: 'ECONNRESET' });
  });
});
