import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, type INestApplication } from '@nestjs/common';
import { CircuitBreaker, CircuitBreakerService, Fallback, ResilienceModule } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { expectProblem, fetchUpstream, retryAfterSeconds } from './support.js';

const UPSTREAM_URL = Symbol('UPSTREAM_URL');

// Every path of this dependency fails: /recommender with 500, /inventory with 503.
const script = (path: string) => (path === '/inventory' ? { status: 503 } : { status: 500 });

const DEGRADED = { items: [], degraded: true };

/** The fallbacks guide's `@Fallback` + `@CircuitBreaker` example (docs/fallbacks.md), with the breaker's defaults. */
@Controller('recommendations')
class RecommendationsController {
  constructor(@Inject(UPSTREAM_URL) private readonly upstream: string) {}

  @Get()
  @Fallback((_error: unknown, _req: unknown) => DEGRADED)
  @CircuitBreaker()
  recommendations() {
    return fetchUpstream(`${this.upstream}/recommender`);
  }
}

/** A provider whose breaker opens at the first failure and stays open for a minute. */
@Injectable()
class InventoryClient {
  constructor(@Inject(UPSTREAM_URL) private readonly upstream: string) {}

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  stock(): Promise<unknown> {
    return fetchUpstream(`${this.upstream}/inventory`);
  }
}

/** No resilience decorator on the route itself. */
@Controller('inventory')
class InventoryController {
  constructor(private readonly inventory: InventoryClient) {}

  @Get()
  stock() {
    return this.inventory.stock();
  }
}

describe.each(platforms)('error defaults with circuit breakers (%s)', (platform) => {
  let upstream: LoopbackServer;
  let app: INestApplication;

  beforeAll(async () => {
    upstream = await startDependency(script);
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot()],
      controllers: [RecommendationsController, InventoryController],
      providers: [{ provide: UPSTREAM_URL, useValue: upstream.url }, InventoryClient],
    });
  });

  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });

  const get = (path: string) => request(app.getHttpServer()).get(path);

  it('answers the fallback to the very first request when the dependency fails with 500 (the fallbacks guide example)', async () => {
    const response = await get('/recommendations');
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: DEGRADED });
    expect(upstream.callsTo('/recommender')).toBe(1);
  });

  it('answers 503 circuit_open with Retry-After on an undecorated route calling a provider whose circuit is open', async () => {
    const tripping = await get('/inventory');
    expect(tripping.status).toBeGreaterThanOrEqual(500);
    expect(upstream.callsTo('/inventory')).toBe(1);
    expect(app.get(CircuitBreakerService).get('InventoryClient.stock')?.state).toBe('open');

    const refused = await get('/inventory');
    expectProblem(refused, 503, 'circuit_open');
    const seconds = retryAfterSeconds(refused);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(upstream.callsTo('/inventory')).toBe(1);
  });
});
