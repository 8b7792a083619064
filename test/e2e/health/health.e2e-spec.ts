import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import {
  CircuitBreaker,
  CircuitBreakerService,
  InMemoryIdempotencyStore,
  ResilienceModule,
  UpstreamHttpError,
  type IdempotencyStore,
} from 'nest-resilience';
import {
  CircuitBreakerHealthIndicator,
  DependencyHealthIndicator,
  IdempotencyStoreHealthIndicator,
  ResilienceHealthModule,
  type CircuitBreakerFailOn,
} from 'nest-resilience/health';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms, type Platform } from '../../support/app.js';
import { hasPostgres, startOwnPostgres, type OwnPostgres } from '../../support/postgres.js';
import type { ThrowawayPostgres } from '../../../scripts/postgres.mjs';


/** What the readiness endpoint checks; tests change it. */
const settings = {
  dependencyUrl: '',
  failOn: 'open' as CircuitBreakerFailOn,
  storeTimeout: 500,
};

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly store: IdempotencyStoreHealthIndicator,
    private readonly dependencies: DependencyHealthIndicator,
    private readonly breakers: CircuitBreakerHealthIndicator,
  ) {}

  /** Liveness: no dependencies, so an outage never restarts the instance. */
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  /** Readiness: everything the instance needs to serve. */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.store.isHealthy('idempotency_store', { timeout: settings.storeTimeout }),
      () => this.dependencies.pingHttp('model_service', settings.dependencyUrl, { timeout: 500 }),
      () => this.breakers.isHealthy('circuit_breakers', { failOn: settings.failOn }),
    ]);
  }
}

@Controller('model')
class ModelController {
  @Get()
  @CircuitBreaker({ key: 'model', strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 })
  call(): never {
    throw new UpstreamHttpError(503);
  }
}

/** An in-memory store whose ping can be made to fail or hang. */
class SwitchableStore extends InMemoryIdempotencyStore {
  mode: 'ok' | 'fail' | 'hang' = 'ok';

  override async ping(): Promise<void> {
    if (this.mode === 'fail') throw new Error('connection terminated unexpectedly');
    if (this.mode === 'hang') return new Promise<void>(() => undefined);
  }
}

function appModule(store: IdempotencyStore) {
  @Module({
    imports: [ResilienceModule.forRoot({ idempotency: { store } }), ResilienceHealthModule],
    controllers: [HealthController, ModelController],
  })
  class AppModule {}
  return AppModule;
}

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

let dependency: Server;
let healthyUrl: string;

beforeAll(async () => {
  dependency = createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((resolve) => dependency.listen(0, '127.0.0.1', resolve));
  healthyUrl = `http://127.0.0.1:${(dependency.address() as AddressInfo).port}/healthz`;
});
afterAll(async () => {
  dependency.closeAllConnections();
  await new Promise((resolve) => dependency.close(resolve));
});

describe.each(platforms)('readiness with ResilienceHealthModule (%s)', (platform) => {
  let app: INestApplication;
  let store: SwitchableStore;

  beforeAll(async () => {
    store = new SwitchableStore();
    app = await createApp(platform, { imports: [appModule(store)] });
  });
  afterAll(() => app.close());
  afterEach(() => {
    Object.assign(settings, { dependencyUrl: healthyUrl, failOn: 'open', storeTimeout: 500 });
    store.mode = 'ok';
    const breakers = app.get(CircuitBreakerService);
    for (const { key } of breakers.list()) breakers.reset(key);
  });

  it('answers 200 with every indicator and breaker in the details when all is up', async () => {
    settings.dependencyUrl = healthyUrl;
    const { body } = await request(app.getHttpServer()).get('/health/ready').expect(200);
    expect(body.status).toBe('ok');
    expect(body.details).toEqual({
      idempotency_store: { status: 'up', latencyMs: expect.any(Number) },
      model_service: { status: 'up', statusCode: 204, latencyMs: expect.any(Number) },
      circuit_breakers: {
        status: 'up',
        breakers: { model: { state: 'closed', failureRate: 0, bufferedCalls: 0, notPermittedCalls: 0 } },
      },
    });
  });

  it('is 503 naming the dependency when it refuses connections, while liveness stays 200', async () => {
    const port = await closedPort();
    settings.dependencyUrl = `http://127.0.0.1:${port}/healthz`;
    const { body } = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(Object.keys(body.error)).toEqual(['model_service']);
    expect(body.error.model_service.message).toContain('refused the connection (ECONNREFUSED)');
    expect(body.info.idempotency_store.status).toBe('up');
    await request(app.getHttpServer()).get('/health/live').expect(200);
  });

  it('is 503 naming the store when its ping fails or hangs past the timeout', async () => {
    settings.dependencyUrl = healthyUrl;
    store.mode = 'fail';
    const failed = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(failed.body.error.idempotency_store).toEqual({
      status: 'down',
      message: 'The idempotency store did not answer its ping: connection terminated unexpectedly.',
      latencyMs: expect.any(Number),
    });

    store.mode = 'hang';
    settings.storeTimeout = 100;
    const hung = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(hung.body.error.idempotency_store.message).toBe(
      'The idempotency store did not answer its ping: timed out: did not answer within 100 ms.',
    );
  });

  it('is down when failures open a breaker, listing its state', async () => {
    settings.dependencyUrl = healthyUrl;
    for (let call = 0; call < 2; call++) {
      const failed = await request(app.getHttpServer()).get('/model');
      expect(failed.status).toBeGreaterThanOrEqual(500);
    }
    const { body } = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(Object.keys(body.error)).toEqual(['circuit_breakers']);
    expect(body.error.circuit_breakers).toMatchObject({
      status: 'down',
      message: 'Circuit breaker(s) open: model.',
      open: ['model'],
      breakers: { model: { state: 'open', failureRate: expect.any(Number), retryAfterMs: expect.any(Number) } },
    });
  });

  it('is down for an isolated breaker, degraded (200) when failOn excludes it, up again after reset', async () => {
    settings.dependencyUrl = healthyUrl;
    const breakers = app.get(CircuitBreakerService);
    breakers.isolate('model');
    const down = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(down.body.error.circuit_breakers.breakers.model.state).toBe('isolated');

    settings.failOn = ['payments'];
    const degraded = await request(app.getHttpServer()).get('/health/ready').expect(200);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.details.circuit_breakers).toMatchObject({ status: 'degraded', open: ['model'] });

    settings.failOn = 'never';
    await request(app.getHttpServer()).get('/health/ready').expect(200);

    settings.failOn = 'open';
    breakers.reset('model');
    const up = await request(app.getHttpServer()).get('/health/ready').expect(200);
    expect(up.body.details.circuit_breakers.breakers.model.state).toBe('closed');
  });
});

// Stops a PostgreSQL server of its own (never the shared one).
describe.skipIf(!hasPostgres)('idempotency store indicator on a TypeORM PostgreSQL store', () => {
  let own: OwnPostgres;
  let postgres: ThrowawayPostgres;
  let dataSource: DataSource;

  beforeAll(async () => {
    own = await startOwnPostgres([IdempotencyRecord], { poolSize: 2, connectTimeoutMs: 500, queryTimeoutMs: 1000 });
    ({ server: postgres, dataSource } = own);
  });
  afterAll(() => own?.close());

  describe.each(platforms)('on %s', (platform: Platform) => {
    let app: INestApplication;

    beforeAll(async () => {
      settings.dependencyUrl = healthyUrl;
      app = await createApp(platform, { imports: [appModule(new TypeOrmIdempotencyStore(dataSource))] });
    });
    afterAll(() => app?.close());

    it('turns 503 within one check when the server stops, naming the store, and recovers when it is back', async () => {
      Object.assign(settings, { dependencyUrl: healthyUrl, storeTimeout: 1000 });
      const up = await request(app.getHttpServer()).get('/health/ready').expect(200);
      expect(up.body.details.idempotency_store.status).toBe('up');

      postgres.halt();
      try {
        const started = performance.now();
        const { body } = await request(app.getHttpServer()).get('/health/ready').expect(503);
        expect(performance.now() - started).toBeLessThan(3000);
        expect(Object.keys(body.error)).toEqual(['idempotency_store']);
        expect(body.error.idempotency_store.status).toBe('down');
        expect(body.error.idempotency_store.message).toMatch(/^The idempotency store did not answer its ping: .+\.$/);
        expect(body.info.model_service.status).toBe('up');
      } finally {
        postgres.start();
      }
      // the pool drops its dead connections and reconnects: readiness comes back by itself
      let recovered = false;
      for (let i = 0; i < 20 && !recovered; i++) {
        const response = await request(app.getHttpServer()).get('/health/ready');
        recovered = response.status === 200;
        if (!recovered) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(recovered).toBe(true);
    });
  });
});
