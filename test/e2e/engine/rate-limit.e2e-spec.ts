import 'reflect-metadata';
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RateLimit, RateLimitedError, ResilienceEvents, ResilienceModule, Timeout, UsePolicy, type ResilienceEvent } from 'nest-resilience';
import { RedisPolicyState } from 'nest-resilience/redis';
import { FakeClock } from 'nest-resilience/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';

/** A provider calling a metered API: each call records when (on the module clock) it ran. */
@Injectable()
class CompletionsApi {
  readonly ranAt: number[] = [];
  constructor(readonly clock: FakeClock) {}

  @RateLimit({ requestsPerSecond: 2, burst: 1 })
  @Timeout(10_000)
  async complete(prompt: string): Promise<string> {
    this.ranAt.push(this.clock.now());
    return `done: ${prompt}`;
  }
}

@Controller('quota')
class QuotaController {
  readonly ran: string[] = [];

  @Get()
  @RateLimit({ requestsPerSecond: 1, burst: 1 })
  @Timeout(300)
  get() {
    this.ran.push('get');
    return 'ok';
  }
}

@Controller('shared')
class SharedQuotaController {
  @Get()
  @RateLimit({ requestsPerSecond: 1, shared: true })
  get() {
    return 'ok';
  }
}

describe('@RateLimit() on a provider method (fake clock)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('each call waits for its turn, in call order: the burst at once, then one per 500 ms', async () => {
    const clock = new FakeClock();
    app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ clock })],
      providers: [{ provide: FakeClock, useValue: clock }, CompletionsApi],
    });
    const api = app.get(CompletionsApi);
    const calls = ['a', 'b', 'c'].map((prompt) => api.complete(prompt));
    await clock.advance(0);
    expect(api.ranAt).toEqual([0]);
    await clock.advance(499);
    expect(api.ranAt).toEqual([0]);
    await clock.advance(1);
    expect(api.ranAt).toEqual([0, 500]);
    await clock.advance(500);
    expect(await Promise.all(calls)).toEqual(['done: a', 'done: b', 'done: c']);
    expect(api.ranAt).toEqual([0, 500, 1_000]);
  });

  it('a turn past the deadline fails at once with RateLimitedError and a rate_limited event; the method does not run (named policy)', async () => {
    @Injectable()
    class TightApi {
      readonly ran: string[] = [];
      @UsePolicy('tight')
      async complete(prompt: string): Promise<string> {
        this.ran.push(prompt);
        return prompt;
      }
    }
    const clock = new FakeClock();
    app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ clock, policies: { tight: { timeout: 400, rateLimit: { requestsPerSecond: 2, burst: 1 } } } })],
      providers: [TightApi],
    });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    const api = app.get(TightApi);
    expect(await api.complete('first')).toBe('first');
    // the key's next turn is 500 ms away, the call's deadline 400 ms
    const refused = await api.complete('second').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused).toMatchObject({ code: 'rate_limited', policy: 'tight', retryAfterMs: 500, reason: 'rate_limited' });
    expect(api.ran).toEqual(['first']);
    expect(events.filter((event) => event.event === 'rate_limited')).toMatchObject([{ policy: 'tight', delayMs: 500 }]);
    // after the interval the next call runs
    await clock.advance(500);
    expect(await api.complete('third')).toBe('third');
  });
});

describe.each(platforms)('@RateLimit() on a route (%s)', (platform) => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('a request whose turn comes after its deadline is answered 503 rate_limited with Retry-After, without running the handler', async () => {
    app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [QuotaController] });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    await request(app.getHttpServer()).get('/quota').expect(200, 'ok');
    const refused = await request(app.getHttpServer()).get('/quota').expect(503);
    expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(refused.body).toMatchObject({ code: 'rate_limited', status: 503 });
    expect(refused.headers['retry-after']).toBe('1');
    expect(app.get(QuotaController).ran).toEqual(['get']);
    expect(events.filter((event) => event.event === 'rate_limited')).toMatchObject([{ policy: 'QuotaController.get', detail: 'rate_limited' }]);
  });

  it('rateLimit.shared without a backend refuses to start, naming the route and the fix', async () => {
    await expect(createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [SharedQuotaController] })).rejects.toThrow(
      "GET SharedQuotaController.get sets rateLimit.shared: true, but no shared state backend is configured. Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove rateLimit.shared.",
    );
  });

  it('an impossible rate refuses to start, naming the option', async () => {
    @Controller('bad')
    class BadController {
      @Get()
      @RateLimit({ requestsPerMinute: 0 })
      get() {
        return 'ok';
      }
    }
    await expect(createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [BadController] })).rejects.toThrow(/rateLimit.requestsPerMinute 0. Give a number > 0/);
  });
});

describe.skipIf(!hasRedis)('@RateLimit({ shared: true }): two apps on one Redis share one limit', () => {
  const clients: Redis[] = [];
  const apps: INestApplication[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const client of clients) client.disconnect();
  });

  it("the second app's call waits for the turn after the first app's, then runs", async () => {
    const prefix = testKeyPrefix('rate-limit-route');
    for (let n = 0; n < 2; n++) {
      const client = new Redis(redisUrl!, { enableOfflineQueue: false });
      await new Promise((resolve) => client.once('ready', resolve));
      clients.push(client);
      apps.push(
        await createApp('express', {
          imports: [ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client, prefix, maxWait: 2_000 }) })],
          controllers: [SharedQuotaController],
        }),
      );
    }
    await request(apps[0]!.getHttpServer()).get('/shared').expect(200);
    const started = performance.now();
    await request(apps[1]!.getHttpServer()).get('/shared').expect(200);
    // one request per second for both apps together: the second waited for its turn
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
  });
});
