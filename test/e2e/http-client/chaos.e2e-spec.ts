import 'reflect-metadata';
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { Fallback, ResilienceModule, ResilienceService, Retryable, Timeout, isInjectedFault } from 'nest-resilience';
import { ResilienceConsoleModule } from 'nest-resilience/console';
import { HttpClient, InjectHttpClient, ResilientHttpModule, isUpstreamError } from 'nest-resilience/http';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OperatorGuard } from '../console/console-app.js';
import { startUpstream, type Upstream } from './upstreams.js';
import { createApp, platforms } from '../../support/app.js';

@Injectable()
class InventoryService {
  constructor(@InjectHttpClient('inventory') readonly client: HttpClient) {}

  async stock(): Promise<unknown> {
    return (await this.client.get('/stock')).data;
  }
}

@Controller('shop')
class ShopController {
  constructor(private readonly inventory: InventoryService) {}

  /** The sample app's shape: the caller's attempt timeout bounds the client's call, a fallback answers a slow one. */
  @Get('stock')
  @Timeout({ total: 2_000, attempt: 250 })
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  @Fallback(() => ({ items: [], degraded: true }), { on: (error) => !isUpstreamError(error) || error.code !== 'http_status' })
  stock(): Promise<unknown> {
    return this.inventory.stock();
  }
}

let upstream: Upstream;
const alice = { authorization: 'Bearer token-alice' };

describe.each(platforms)('runtime chaos on an HttpClient (%s)', (platform) => {
  let app: INestApplication;
  const chaos = () => app.get(ResilienceService).chaos();
  const client = () => app.get(InventoryService).client;

  beforeAll(async () => {
    upstream = await startUpstream(() => ({ status: 200, body: { items: ['bolts'] } }));
    app = await createApp(platform, {
      imports: [
        ResilienceModule.forRoot({ chaos: { enabled: true, seed: 9 } }),
        ResilientHttpModule.register({
          clients: {
            inventory: {
              baseUrl: upstream.url,
              retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 5 } },
              circuitBreaker: { strategy: { type: 'consecutive', threshold: 6 }, breakDuration: 60_000 },
              rateLimit: { requestsPerSecond: 50, burst: 10 },
            },
          },
        }),
        ResilienceConsoleModule.register({ guard: OperatorGuard }),
      ],
      controllers: [ShopController],
      providers: [InventoryService],
    });
  });
  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });
  afterEach(() => chaos().clear());

  it("an exception injected into the client is retried by the client's retry, counted by its breaker, and nothing is sent", async () => {
    const sent = upstream.received.length;
    const rule = chaos().inject({ target: { httpClient: 'inventory' }, fault: { kind: 'exception' }, rate: 1 });
    const error = await client().get('/stock').catch((failure: unknown) => failure);
    expect(isUpstreamError(error)).toBe(true);
    expect(isInjectedFault((error as Error).cause)).toBe(true);
    expect(chaos().get(rule.id)?.injected).toBe(3);
    expect(upstream.received.length).toBe(sent);
    const breaker = client().circuitBreakers()[0]!.snapshot;
    expect(breaker).toMatchObject({ state: 'closed', bufferedCalls: 3, failureRate: 1 });
    chaos().clear();
    expect((await client().get('/stock')).data).toEqual({ items: ['bolts'] });
  });

  it("an injected 503 with Retry-After is the origin's answer to the client: it pauses every call to the origin", async () => {
    const sent = upstream.received.length;
    chaos().inject({ id: 'throttle', target: { httpClient: 'inventory', origin: upstream.url }, fault: { kind: 'http', status: 503, headers: { 'retry-after': '60' }, body: { error: 'busy' } }, rate: 1 });
    const error = await client().get('/stock').catch((failure: unknown) => failure);
    // the retry would wait 60 s, past the client's 30 s deadline: it gives up with the 503 at once
    expect(error).toMatchObject({ code: 'http_status', status: 503, body: { error: 'busy' }, retryAfterMs: 60_000 });
    expect(isInjectedFault(error)).toBe(true);
    expect(client().pausedUntil()).toBeGreaterThan(Date.now() + 55_000);
    // switched off, the pause the answer set still holds: the next call, whose deadline ends sooner, is not sent
    chaos().switch('throttle', false);
    const paused = await client().get('/stock').catch((failure: unknown) => failure);
    expect(paused).toMatchObject({ code: 'rate_limited' });
    expect(upstream.received.length).toBe(sent);
    const { body: state } = await request(app.getHttpServer()).get('/resilience/api/state').set(alice).expect(200);
    const origin = state.httpClients.find((c: any) => c.name === 'inventory').origins[0];
    expect(origin).toMatchObject({ origin: upstream.url, policy: `http:inventory@${upstream.url}`, breaker: { state: 'closed' }, rateLimit: { burst: 10, requestsPerSecond: 50 } });
    expect(origin.pausedForMs).toBeGreaterThan(55_000);
    expect(origin.rateLimit.tokens).toBeLessThanOrEqual(10);
  });
});

describe('runtime chaos: latency into the HttpClient of a decorated route (the sample demo step)', () => {
  let app: INestApplication;

  beforeAll(async () => {
    upstream = await startUpstream(() => ({ status: 200, body: { items: ['nuts'] } }));
    app = await createApp('express', {
      imports: [
        ResilienceModule.forRoot({ chaos: { enabled: true } }),
        ResilientHttpModule.register({ clients: { inventory: { baseUrl: upstream.url, retry: false, circuitBreaker: false } } }),
      ],
      controllers: [ShopController],
      providers: [InventoryService],
    });
  });
  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });

  it("each of the route's attempts times out inside the injected latency, no request is sent, and the fallback answers", async () => {
    const sent = upstream.received.length;
    expect((await request(app.getHttpServer()).get('/shop/stock').expect(200)).body).toEqual({ items: ['nuts'] });
    const rule = app.get(ResilienceService).chaos().inject({ target: { httpClient: 'inventory' }, fault: { kind: 'latency', ms: 1_500 }, rate: 1 });
    const started = Date.now();
    const answer = await request(app.getHttpServer()).get('/shop/stock').expect(200);
    expect(answer.body).toEqual({ items: [], degraded: true });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(app.get(ResilienceService).chaos().get(rule.id)?.injected).toBe(2);
    expect(upstream.received.length).toBe(sent + 1);
    app.get(ResilienceService).chaos().remove(rule.id);
    expect((await request(app.getHttpServer()).get('/shop/stock').expect(200)).body).toEqual({ items: ['nuts'] });
  });
});
