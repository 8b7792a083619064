import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { ResilienceModule } from 'nest-resilience';
import { HttpClientHealthIndicator, ResilienceHealthModule } from 'nest-resilience/health';
import { getHttpClientToken, type HttpClient, ResilientHttpModule } from 'nest-resilience/http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

/** What the upstream's /health answers. */
const upstreamHealth = { status: 200 };

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly clients: HttpClientHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.clients.isHealthy('partner', 'partner')]);
  }

  /** Opted in to failing on an open breaker or a failed ping. */
  @Get('strict')
  @HealthCheck()
  strict() {
    return this.health.check([() => this.clients.isHealthy('partner', 'partner', { failOn: ['open', 'ping'] })]);
  }
}

describe.each(platforms)('HttpClientHealthIndicator on %s', (platform) => {
  let app: INestApplication;
  let upstream: Upstream;

  beforeAll(async () => {
    upstream = await startUpstream((req) => (req.path === '/health' ? { status: upstreamHealth.status } : { status: 500 }));
    app = await createApp(platform, {
      imports: [
        ResilienceModule.forRoot(),
        ResilienceHealthModule,
        ResilientHttpModule.register({
          clients: {
            partner: { baseUrl: upstream.url, retry: false, ping: { path: '/health', timeout: 1_000 }, circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 } },
          },
        }),
      ],
      controllers: [HealthController],
    });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('is up while the ping answers and no breaker is open, with the probe status and latency', async () => {
    upstreamHealth.status = 200;
    const response = await request(app.getHttpServer()).get('/health').expect(200);
    expect(response.body.details.partner).toMatchObject({ status: 'up', client: 'partner', statusCode: 200, breakers: {} });
    expect(typeof response.body.details.partner.latencyMs).toBe('number');
  });

  it('is degraded (200) when the ping answers 5xx, down only when failOn opts in, without touching the breaker', async () => {
    upstreamHealth.status = 503;
    const response = await request(app.getHttpServer()).get('/health').expect(200);
    expect(response.body.status).toBe('degraded');
    expect(response.body.details.partner).toMatchObject({ status: 'degraded', statusCode: 503 });
    expect(response.body.details.partner.message).toContain('answered HTTP 503');
    const strict = await request(app.getHttpServer()).get('/health/strict').expect(503);
    expect(strict.body.details.partner).toMatchObject({ status: 'down', statusCode: 503 });
    upstreamHealth.status = 200;
    const recovered = await request(app.getHttpServer()).get('/health').expect(200);
    expect(recovered.body.details.partner.status).toBe('up');
  });

  it("is degraded (200) once the client's breaker for an origin opened, with the breaker in details; down only when failOn opts in", async () => {
    const client = app.get<HttpClient>(getHttpClientToken('partner'), { strict: false });
    await expect(client.get('/boom')).rejects.toMatchObject({ code: 'http_status' });
    const response = await request(app.getHttpServer()).get('/health').expect(200);
    expect(response.body.details.partner).toMatchObject({ status: 'degraded', breakers: { [upstream.url]: { state: 'open' } } });
    expect(response.body.details.partner.message).toContain('is open for');
    const strict = await request(app.getHttpServer()).get('/health/strict').expect(503);
    expect(strict.body.details.partner).toMatchObject({ status: 'down', breakers: { [upstream.url]: { state: 'open' } } });
  });
});
