import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Module, Param, type INestApplication } from '@nestjs/common';
import { ResilienceModule, Retryable, Timeout } from 'nest-resilience';
import { getHttpClientToken, HttpClient, HttpClients, InjectHttpClient, ResilientHttpModule } from 'nest-resilience/http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

const CONFIG = Symbol('CONFIG');

@Injectable()
class PartnerService {
  constructor(@InjectHttpClient('partner') readonly partner: HttpClient) {}

  fetch(path: string) {
    return this.partner.get(`/${path}`).then((response) => response.data);
  }
}

@Controller('calls')
class CallsController {
  constructor(
    private readonly service: PartnerService,
    @InjectHttpClient('configured') private readonly configured: HttpClient,
  ) {}

  // 300 ms did not cover a loopback call with stress --cpu 2 on the shared 2-core machine (load
  // average ~30); the hang test waits out this deadline
  @Get('partner/:path')
  @Timeout(2_000)
  partner(@Param('path') path: string) {
    return this.service.fetch(path);
  }

  @Get('retried/:path')
  @Timeout({ total: 2_000, attempt: 150 })
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  retried(@Param('path') path: string) {
    return this.service.fetch(path);
  }

  @Get('undecorated/:path')
  undecorated(@Param('path') path: string) {
    return this.service.fetch(path);
  }

  @Get('configured')
  async viaAsync() {
    return (await this.configured.get('/hello')).data;
  }
}

@Module({ providers: [{ provide: CONFIG, useFactory: () => ({ url: upstream.url }) }], exports: [CONFIG] })
class ConfigModule {}

let upstream: Upstream;

describe.each(platforms)('HttpClient inside a Nest app on %s', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    upstream = await startUpstream((req) => {
      if (req.path === '/hang') return { hang: true };
      if (req.path === '/missing') return { status: 404 };
      if (req.path === '/down') return { status: 503, headers: { 'retry-after': '7' } };
      return { body: { path: req.path, requestId: req.headers['x-request-id'], budget: req.headers['x-request-timeout-ms'] } };
    });
    app = await createApp(platform, {
      imports: [
        ResilienceModule.forRoot({ policies: { partner: { retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 1 } } } } }),
        ResilientHttpModule.register({ clients: { partner: { baseUrl: upstream.url, policy: 'partner', timeout: { total: 2_000, attempt: 1_000 } } } }),
        ResilientHttpModule.registerAsync({
          clients: [{ name: 'configured', imports: [ConfigModule], inject: [CONFIG], useFactory: (config: { url: string }) => ({ baseUrl: config.url }) }],
        }),
      ],
      controllers: [CallsController],
      providers: [PartnerService],
    });
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('injects named clients (register and registerAsync) and sends the request id and the remaining budget', async () => {
    const response = await request(app.getHttpServer()).get('/calls/partner/ok').set('x-request-id', 'req-42').expect(200);
    expect(response.body).toMatchObject({ path: '/ok', requestId: 'req-42' });
    expect(Number(response.body.budget)).toBeGreaterThan(0);
    expect(Number(response.body.budget)).toBeLessThanOrEqual(2_000);
    // outside a decorated route the budget sent is the client's own attempt timeout (10 s by default)
    const configured = await request(app.getHttpServer()).get('/calls/configured').expect(200);
    expect(configured.body).toMatchObject({ path: '/hello' });
    expect(Number(configured.body.budget)).toBeGreaterThan(9_000);
    expect(app.get(getHttpClientToken('partner'), { strict: false })).toBe(app.get(PartnerService).partner);
    expect(app.get(HttpClients, { strict: false }).list().map((client) => client.name)).toHaveLength(1);
  });

  it("cancels the outgoing request when the route's deadline passes (the socket closes) and answers the timeout problem", async () => {
    const before = upstream.received.length;
    const response = await request(app.getHttpServer()).get('/calls/partner/hang').expect(503);
    expect(response.body).toMatchObject({ code: 'timeout' });
    await upstream.socketClosed(before + 1);
  });

  it("retries a call cut by the caller's attempt timeout like any attempt timeout, each request cancelled", async () => {
    const before = upstream.received.length;
    const response = await request(app.getHttpServer()).get('/calls/retried/hang').expect(503);
    expect(response.body).toMatchObject({ code: 'timeout' });
    expect(upstream.received.length - before).toBe(3);
    await Promise.all([1, 2, 3].map((n) => upstream.socketClosed(before + n)));
  });

  it('maps upstream failures through the error mapper, on undecorated routes too', async () => {
    const rejected = await request(app.getHttpServer()).get('/calls/undecorated/missing').expect(502);
    expect(rejected.headers['content-type']).toContain('application/problem+json');
    expect(rejected.body).toMatchObject({ code: 'upstream_rejected' });
    const before = upstream.received.length;
    const unavailable = await request(app.getHttpServer()).get('/calls/undecorated/down').expect(503);
    expect(unavailable.body).toMatchObject({ code: 'upstream_unavailable' });
    expect(unavailable.headers['retry-after']).toBe('7');
    // a 7 s Retry-After is beyond the call's 2 s deadline: the retry is refused at once
    expect(upstream.received.length - before).toBe(1);
  });

  it('stops start-up with a sentence naming the fix when a client option can never work', async () => {
    await expect(
      createApp(platform, {
        imports: [ResilienceModule.forRoot(), ResilientHttpModule.register({ clients: { broken: { baseUrl: upstream.url, policy: 'missing' } } })],
      }),
    ).rejects.toThrow(/HTTP client "broken" uses the named policy "missing", which does not exist/);
  });
});
