import 'reflect-metadata';
import { Controller, Get, Param, type INestApplication } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { HttpClient, InjectHttpClient, ResilientHttpModule } from 'nest-resilience/http';
import { FakeClock, observe } from 'nest-resilience/testing';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

@Controller('limited')
class LimitedController {
  constructor(
    @InjectHttpClient('throttled') private readonly throttled: HttpClient,
    @InjectHttpClient('metered') private readonly metered: HttpClient,
  ) {}

  @Get('throttled/:path')
  async viaThrottled(@Param('path') path: string) {
    return (await this.throttled.get(`/${path}`)).data;
  }

  @Get('metered')
  async viaMetered() {
    return (await this.metered.get('/ok')).data;
  }
}

/** Lets the servers and the clients' callbacks run without moving the fake clock. */
async function settleIo(clock: FakeClock, until: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !until(); i++) {
    await clock.flush();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe.each(platforms)('rate limit and Retry-After pause inside a Nest app on %s (FakeClock)', (platform) => {
  let app: INestApplication;
  let upstream: Upstream;
  const clock = new FakeClock(Date.parse('2026-12-04T12:00:00Z'));

  beforeAll(async () => {
    upstream = await startUpstream((req) => (req.path === '/busy' ? { status: 429, headers: { 'retry-after': '30' } } : { body: { path: req.path } }));
    app = await createApp(
      platform,
      {
        imports: [
          ResilienceModule.forRoot({ clock }),
          ResilientHttpModule.register({
            clients: {
              throttled: { baseUrl: upstream.url, retry: false, timeout: { total: 5_000 } },
              metered: { baseUrl: upstream.url, rateLimit: { requestsPerSecond: 1, burst: 1 }, timeout: { total: 10_000, attempt: 5_000 } },
            },
          }),
        ],
        controllers: [LimitedController],
      },
      { listen: true },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('a 429 with Retry-After pauses the client: a call whose deadline ends sooner fails at once with 503 and the pause as Retry-After', async () => {
    const server = app.getHttpServer();
    const busy = await request(server).get('/limited/throttled/busy').expect(503);
    expect(busy.body).toMatchObject({ code: 'upstream_unavailable' });
    const sent = upstream.received.length;
    const paused = await request(server).get('/limited/throttled/other').expect(503);
    expect(paused.body).toMatchObject({ code: 'upstream_unavailable' });
    expect(paused.headers['retry-after']).toBe('30');
    expect(upstream.received.length).toBe(sent);
    await clock.advance(30_000);
    await request(server).get('/limited/throttled/other').expect(200, { path: '/other' });
  });

  it('the token bucket holds a second call until a token is due, on the module clock', async () => {
    const server = app.getHttpServer();
    await request(server).get('/limited/metered').expect(200);
    const sent = upstream.received.length;
    const second = observe(request(server).get('/limited/metered').then((r) => r.status));
    await settleIo(clock, () => false);
    expect(upstream.received.length).toBe(sent);
    expect(second.settled).toBe(false);
    await clock.advance(1_000);
    await settleIo(clock, () => second.settled);
    expect(second).toMatchObject({ settled: true, value: 200 });
    expect(upstream.received.length).toBe(sent + 1);
  });
});

describe('hedged reads against a real loopback upstream', () => {
  let upstream: Upstream | undefined;
  let client: HttpClient | undefined;

  afterEach(async () => {
    await client?.close();
    await upstream?.close();
  });

  it('sends a hedge after the delay; the first success wins and the slower request is aborted', async () => {
    upstream = await startUpstream((_req, n) => (n === 1 ? { hang: true } : { body: { from: n } }));
    client = new HttpClient('hedged', { baseUrl: upstream.url, hedging: { delay: 30 }, retry: false });
    const response = await client.get('/read');
    expect(response).toMatchObject({ data: { from: 2 }, attempts: 2 });
    await upstream.socketClosed(1);
  });

  it('never hedges a write, and a call may opt out', async () => {
    upstream = await startUpstream(() => ({ body: { ok: true }, delayMs: 80 }));
    client = new HttpClient('hedged', { baseUrl: upstream.url, hedging: { delay: 10 }, retry: false });
    await expect(client.post('/write', {})).resolves.toMatchObject({ attempts: 1 });
    await expect(client.get('/read', { hedge: false })).resolves.toMatchObject({ attempts: 1 });
    expect(upstream.received).toHaveLength(2);
  });

  it('waits for the hedge when the first request fails after it was sent, and reports both requests', async () => {
    upstream = await startUpstream((_req, n) => (n === 1 ? { status: 500, delayMs: 60 } : { status: 200, body: { ok: n }, delayMs: 120 }));
    client = new HttpClient('hedged', { baseUrl: upstream.url, hedging: { delay: 20 }, retry: false });
    await expect(client.get('/read')).resolves.toMatchObject({ data: { ok: 2 }, attempts: 2 });
  });
});

@Controller('guarded')
class GuardedController {
  constructor(
    @InjectHttpClient('hedged') private readonly hedged: HttpClient,
    @InjectHttpClient('fragile') private readonly fragile: HttpClient,
  ) {}

  @Get('hedged')
  async viaHedged() {
    return (await this.hedged.get('/slow-first')).data;
  }

  @Get('fragile')
  async viaFragile() {
    return (await this.fragile.get('/broken')).data;
  }
}

describe.each(platforms)('hedging and the breaker inside a Nest app on %s', (platform) => {
  let app: INestApplication;
  let upstream: Upstream;
  const seen = new Map<string, number>();

  beforeAll(async () => {
    upstream = await startUpstream((req) => {
      const n = (seen.get(req.path) ?? 0) + 1;
      seen.set(req.path, n);
      if (req.path === '/broken') return { status: 500 };
      return n === 1 ? { hang: true } : { body: { answeredBy: n } };
    });
    app = await createApp(platform, {
      imports: [
        ResilienceModule.forRoot(),
        ResilientHttpModule.register({
          clients: {
            hedged: { baseUrl: upstream.url, retry: false, hedging: { delay: 30 } },
            fragile: { baseUrl: upstream.url, retry: false, circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 } },
          },
        }),
      ],
      controllers: [GuardedController],
    });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('answers with the hedge when the first request hangs, and cancels the first', async () => {
    const from = upstream.received.length;
    await request(app.getHttpServer()).get('/guarded/hedged').expect(200, { answeredBy: 2 });
    await upstream.socketClosed(from + 1);
  });

  it('opens the breaker of the client and origin: the next call is refused with 503 circuit_open without reaching the upstream', async () => {
    await request(app.getHttpServer()).get('/guarded/fragile').expect(503);
    const sent = upstream.received.length;
    const refused = await request(app.getHttpServer()).get('/guarded/fragile').expect(503);
    expect(refused.body).toMatchObject({ code: 'circuit_open' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(50);
    expect(upstream.received.length).toBe(sent);
  });
});
