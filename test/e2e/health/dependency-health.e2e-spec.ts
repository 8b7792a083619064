import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { DependencyHealthIndicator } from 'nest-resilience/health';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

/** A loopback port nobody listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** What the health endpoint probes; each test points it somewhere. */
const target = {
  url: '',
  expectStatus: undefined as number | undefined,
  timeout: 1000,
  tcp: { host: '127.0.0.1', port: 0 },
};

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly dependencies: DependencyHealthIndicator,
  ) {}

  @Get('http')
  @HealthCheck()
  http() {
    return this.health.check([
      () => this.dependencies.pingHttp('model_service', target.url, { timeout: target.timeout, expectStatus: target.expectStatus }),
    ]);
  }

  @Get('tcp')
  @HealthCheck()
  tcp() {
    return this.health.check([() => this.dependencies.pingTcp('cache', target.tcp, { timeout: target.timeout })]);
  }
}

let dependency: Server;
let dependencyPort: number;
/** Status the fake dependency answers with, per path. */
const routes: Record<string, number | 'hang'> = { '/healthz': 200, '/sick': 503, '/hang': 'hang' };

beforeAll(async () => {
  dependency = createServer((req, res) => {
    const status = routes[req.url ?? ''] ?? 404;
    if (status === 'hang') return; // accepts the request and never answers
    res.writeHead(status, { 'content-type': 'text/plain' }).end('x'.repeat(10_000));
  });
  await new Promise<void>((resolve) => dependency.listen(0, '127.0.0.1', resolve));
  dependencyPort = (dependency.address() as AddressInfo).port;
});
afterAll(async () => {
  dependency.closeAllConnections();
  await new Promise((resolve) => dependency.close(resolve));
});

describe.each(platforms)('DependencyHealthIndicator (%s)', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createApp(platform, {
      imports: [TerminusModule],
      controllers: [HealthController],
      providers: [DependencyHealthIndicator],
    });
  });
  afterAll(() => app.close());

  it('is up with latency and status when the HTTP dependency answers 2xx', async () => {
    Object.assign(target, { url: `http://127.0.0.1:${dependencyPort}/healthz`, expectStatus: undefined, timeout: 1000 });
    const { body } = await request(app.getHttpServer()).get('/health/http').expect(200);
    expect(body.status).toBe('ok');
    expect(body.details.model_service).toEqual({ status: 'up', statusCode: 200, latencyMs: expect.any(Number) });
  });

  it('is 503 naming the dependency when its port is closed (connection refused)', async () => {
    const port = await closedPort();
    Object.assign(target, { url: `http://127.0.0.1:${port}/healthz`, expectStatus: undefined, timeout: 1000 });
    const { body } = await request(app.getHttpServer()).get('/health/http').expect(503);
    expect(body.status).toBe('error');
    expect(body.error.model_service).toEqual({
      status: 'down',
      message: `http://127.0.0.1:${port}/healthz refused the connection (ECONNREFUSED).`,
      latencyMs: expect.any(Number),
    });
  });

  it('is down with the status when the dependency answers an unexpected status', async () => {
    Object.assign(target, { url: `http://127.0.0.1:${dependencyPort}/sick`, expectStatus: undefined, timeout: 1000 });
    const { body } = await request(app.getHttpServer()).get('/health/http').expect(503);
    expect(body.error.model_service).toMatchObject({ status: 'down', statusCode: 503 });
    expect(body.error.model_service.message).toContain('answered HTTP 503; expected a 2xx or 3xx status');
  });

  it('honours expectStatus', async () => {
    Object.assign(target, { url: `http://127.0.0.1:${dependencyPort}/sick`, expectStatus: 503, timeout: 1000 });
    await request(app.getHttpServer()).get('/health/http').expect(200);
    Object.assign(target, { url: `http://127.0.0.1:${dependencyPort}/healthz`, expectStatus: 204 });
    const { body } = await request(app.getHttpServer()).get('/health/http').expect(503);
    expect(body.error.model_service.message).toContain('expected HTTP 204');
  });

  it('is down after the timeout when the dependency never answers', async () => {
    Object.assign(target, { url: `http://127.0.0.1:${dependencyPort}/hang`, expectStatus: undefined, timeout: 150 });
    const started = performance.now();
    const { body } = await request(app.getHttpServer()).get('/health/http').expect(503);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(body.error.model_service.message).toBe(`http://127.0.0.1:${dependencyPort}/hang timed out: did not answer within 150 ms.`);
    expect(body.error.model_service.latencyMs).toBeGreaterThanOrEqual(140);
  });

  it('pings a TCP dependency: up when it accepts, 503 naming it when refused', async () => {
    Object.assign(target, { timeout: 1000, tcp: { host: '127.0.0.1', port: dependencyPort } });
    const up = await request(app.getHttpServer()).get('/health/tcp').expect(200);
    expect(up.body.details.cache).toEqual({ status: 'up', latencyMs: expect.any(Number) });

    const port = await closedPort();
    target.tcp = { host: '127.0.0.1', port };
    const down = await request(app.getHttpServer()).get('/health/tcp').expect(503);
    expect(down.body.error.cache).toEqual({
      status: 'down',
      message: `127.0.0.1:${port} refused the connection (ECONNREFUSED).`,
      latencyMs: expect.any(Number),
    });
  });
});
