import 'reflect-metadata';
import { Controller, Get, Injectable, Query, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import request from 'supertest';
import { CircuitBreaker, ResilienceEvents, ResilienceModule, type ResilienceEvent } from 'nest-resilience';
import { CircuitBreakerHealthIndicator, HttpClientHealthIndicator, ResilienceHealthModule } from 'nest-resilience/health';
import { getHttpClientToken, ResilientHttpModule, type HttpClient } from 'nest-resilience/http';
import { RedisPolicyState } from 'nest-resilience/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';
import { startUpstream, type Upstream } from '../http-client/upstreams.js';

/** Every breaker event of every instance, from the moment each is constructed (before any read of the shared state lands). */
const breakerEvents: Array<ResilienceEvent & { instance: number }> = [];
let instances = 0;

@Injectable()
class BreakerEventTap {
  constructor(events: ResilienceEvents) {
    const instance = ++instances;
    events.subscribe((event) => {
      if (event.event.startsWith('breaker_')) breakerEvents.push({ ...event, instance });
    });
  }
}

const breaker = { strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000, shared: true } as const;

@Controller('model')
class ModelController {
  /** A route behind a breaker shared by every instance; `?fail=1` makes its call fail. */
  @Get()
  @CircuitBreaker(breaker)
  predict(@Query('fail') fail?: string) {
    if (fail) throw new ServiceUnavailableException('the model is down');
    return { ok: true };
  }
}

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly breakers: CircuitBreakerHealthIndicator,
    private readonly clients: HttpClientHealthIndicator,
  ) {}

  /** Readiness as the docs advise it: the indicators with their defaults. */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.breakers.isHealthy('circuit_breakers'), () => this.clients.isHealthy('partner', 'partner')]);
  }

  /** The same indicators, opted in to fail on an open breaker. */
  @Get('strict')
  @HealthCheck()
  strict() {
    return this.health.check([
      () => this.breakers.isHealthy('circuit_breakers', { failOn: 'open' }),
      () => this.clients.isHealthy('partner', 'partner', { failOn: ['open'] }),
    ]);
  }
}

// Two instances of one application share their breakers through one Redis: the failures one of
// them sees open the breakers of both. Readiness must not follow, or one dependency's outage takes
// every instance out of the load balancer.
describe.skipIf(!hasRedis)('readiness with breakers shared on Redis by two instances', () => {
  const prefix = testKeyPrefix('readiness');
  const clients: Redis[] = [];
  const apps: INestApplication[] = [];
  let upstream: Upstream;

  async function instance(): Promise<INestApplication> {
    const client = new Redis(redisUrl!, { enableOfflineQueue: false });
    clients.push(client);
    await new Promise<void>((resolve) => client.once('ready', resolve));
    const app = await createApp('express', {
      imports: [
        ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client, prefix, maxWait: 2_000 }) }),
        ResilienceHealthModule,
        ResilientHttpModule.register({ clients: { partner: { baseUrl: upstream.url, retry: false, circuitBreaker: breaker } } }),
      ],
      controllers: [ModelController, HealthController],
      providers: [BreakerEventTap],
    });
    apps.push(app);
    return app;
  }

  beforeAll(async () => {
    upstream = await startUpstream(() => ({ status: 503 }));
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const client of clients) client.disconnect();
    await upstream?.close();
  });

  it("one instance's failures open the shared breakers; the other stays ready (200, degraded, the breakers in details) unless it opted in with failOn", async () => {
    const [first, second] = [await instance(), await instance()];
    await request(second.getHttpServer()).get('/health/ready').expect(200);

    // the first instance alone meets the failures
    await request(first.getHttpServer()).get('/model?fail=1').expect(503);
    const partner = first.get<HttpClient>(getHttpClientToken('partner'), { strict: false });
    await expect(partner.get('/predict')).rejects.toMatchObject({ code: 'http_status' });

    // the second instance learns both opens from Redis
    const deadline = Date.now() + 5_000;
    let body: { status: string; details: Record<string, any> } | undefined;
    for (;;) {
      const res = await request(second.getHttpServer()).get('/health/ready');
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      body = res.body;
      const open = body!.details.circuit_breakers?.breakers?.['ModelController.predict']?.state === 'open' && body!.details.partner?.breakers?.[upstream.url]?.state === 'open';
      if (open) break;
      if (Date.now() > deadline) throw new Error(`the second instance never saw the shared breakers open: ${JSON.stringify(body)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(body!.status).toBe('degraded');
    // the route's breaker and the HTTP client's (every breaker of the app is listed)
    expect(body!.details.circuit_breakers).toMatchObject({ status: 'degraded', open: expect.arrayContaining(['ModelController.predict', `http:partner@${upstream.url}`]) });
    expect(body!.details.partner).toMatchObject({ status: 'degraded', breakers: { [upstream.url]: { state: 'open' } } });
    // the first instance, whose own calls failed, is ready too: its breakers protect it
    await request(first.getHttpServer()).get('/health/ready').expect(200);

    // opting in per indicator turns the open breaker into "down"
    const strict = await request(second.getHttpServer()).get('/health/strict').expect(503);
    expect(strict.body.details.circuit_breakers).toMatchObject({ status: 'down', open: expect.arrayContaining(['ModelController.predict']) });
    expect(strict.body.details.partner).toMatchObject({ status: 'down' });
  });

  it('an instance started while the shared breakers are open reports breaker_state_loaded for each, not breaker_opened', async () => {
    // the previous test left both breakers open in Redis (60 s break)
    await instance();
    const third = instances;
    const ofThird = () => breakerEvents.filter((event) => event.instance === third);
    const deadline = Date.now() + 5_000;
    while (ofThird().filter((event) => event.event === 'breaker_state_loaded').length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(ofThird().filter((event) => event.event === 'breaker_opened')).toEqual([]);
    expect(ofThird().filter((event) => event.event === 'breaker_state_loaded').map((event) => event.policy).sort()).toEqual(
      ['ModelController.predict', expect.stringContaining('partner')].sort(),
    );
  });
});
