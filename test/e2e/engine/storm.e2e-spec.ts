import 'reflect-metadata';
import { Controller, Get, Injectable, Req, type INestApplication } from '@nestjs/common';
import {
  Bulkhead,
  CircuitBreaker,
  CircuitBreakerService,
  Fallback,
  ResilienceModule,
  ResilienceService,
  Timeout,
  UnknownCircuitBreakerError,
  UsePolicy,
  type FallbackProvider,
} from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { DEPENDENCY_URL, Dependency } from './dependency-client.js';
import { startDependency, type LoopbackServer } from './loopback-servers.js';

const neverSettles = () => new Promise<never>(() => undefined);

/** A gate the bulkhead handler waits on, opened by the test. */
const gate = {
  entered: undefined as undefined | (() => void),
  open: undefined as undefined | (() => void),
};

@Injectable()
class Greeting {
  readonly text = 'from DI';
}

@Injectable()
class CachedQuoteFallback implements FallbackProvider {
  constructor(private readonly greeting: Greeting) {}

  fallback(error: unknown) {
    return { source: 'provider', greeting: this.greeting.text, cause: (error as { code?: string }).code };
  }
}

@Injectable()
class QuoteService {
  @Timeout(50)
  @Fallback((error: unknown, symbol: string, currency: string) => ({ symbol, currency, cause: (error as { code?: string }).code }))
  async quote(_symbol: string, _currency: string): Promise<unknown> {
    return neverSettles();
  }
}

@Controller('storm')
class StormController {
  constructor(
    private readonly dependency: Dependency,
    private readonly quotes: QuoteService,
  ) {}

  @Get('breaker')
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 30_000 })
  breaker() {
    return this.dependency.get('/down-breaker');
  }

  @Get('payments')
  @UsePolicy('payments')
  payments() {
    return this.dependency.get('/down-payments');
  }

  @Get('fallback/value')
  @Timeout(50)
  @Fallback({ source: 'value' })
  fallbackValue() {
    return neverSettles();
  }

  @Get('fallback/factory')
  @Fallback((error: unknown, req: { url: string }) => ({ source: 'factory', cause: (error as { code?: string }).code, url: req.url }))
  @Timeout(50)
  fallbackFactory(@Req() _req: { url: string }) {
    return neverSettles();
  }

  @Get('fallback/provider')
  @Timeout(50)
  @Fallback(CachedQuoteFallback)
  fallbackProvider() {
    return neverSettles();
  }

  @Get('fallback/service')
  fallbackService() {
    return this.quotes.quote('ACME', 'EUR');
  }

  @Get('bulkhead')
  @Bulkhead({ maxConcurrent: 1, maxQueue: 0 })
  bulkhead() {
    return this.waitAtGate();
  }

  @Get('bulkhead-429')
  @Bulkhead({ maxConcurrent: 1, rejectStatus: 429 })
  bulkhead429() {
    return this.waitAtGate();
  }

  private async waitAtGate() {
    await new Promise<void>((resolve) => {
      gate.open = resolve;
      gate.entered?.();
    });
    return { done: true };
  }
}

for (const platform of platforms) {
  describe(`circuit breaker, bulkhead and fallback (${platform})`, () => {
    let dependency: LoopbackServer;
    let app: INestApplication;

    beforeAll(async () => {
      dependency = await startDependency(() => ({ status: 503 }));
      app = await createApp(platform, {
        imports: [
          ResilienceModule.forRoot({
            policies: {
              payments: { circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 2_500 } },
            },
          }),
        ],
        controllers: [StormController],
        providers: [{ provide: DEPENDENCY_URL, useValue: dependency.url }, Dependency, Greeting, CachedQuoteFallback, QuoteService],
      });
    });

    afterAll(async () => {
      await app?.close();
      await dependency?.close();
    });

    it('answers 503 circuit_open with Retry-After from an open breaker without calling the dependency', async () => {
      await request(app.getHttpServer()).get('/storm/breaker').expect(503);
      await request(app.getHttpServer()).get('/storm/breaker').expect(503);
      expect(dependency.callsTo('/down-breaker')).toBe(2);

      const refused = await request(app.getHttpServer()).get('/storm/breaker').expect(503);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.body).toMatchObject({ code: 'circuit_open', status: 503, type: 'https://nest-resilience.dev/problems/circuit_open' });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(30);
      expect(dependency.callsTo('/down-breaker')).toBe(2);
    });

    it('keys a named policy breaker by the policy name and lets CircuitBreakerService control it', async () => {
      const breakers = app.get(CircuitBreakerService);
      expect(app.get(ResilienceService).policyKey(StormController, 'payments')).toBe('payments');
      expect(breakers.list().map((breaker) => breaker.key)).toEqual(expect.arrayContaining(['payments', 'StormController.breaker']));

      await request(app.getHttpServer()).get('/storm/payments').expect(503);
      const refused = await request(app.getHttpServer()).get('/storm/payments').expect(503);
      expect(refused.body.code).toBe('circuit_open');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(3);
      expect(breakers.get('payments')?.state).toBe('open');

      breakers.reset('payments');
      expect(breakers.get('payments')?.state).toBe('closed');
      await request(app.getHttpServer()).get('/storm/payments').expect(503);
      expect(dependency.callsTo('/down-payments')).toBe(2);

      breakers.reset('payments');
      breakers.isolate('payments');
      expect(breakers.get('payments')?.state).toBe('isolated');
      await request(app.getHttpServer()).get('/storm/payments').expect(503);
      expect(dependency.callsTo('/down-payments')).toBe(2);

      expect(() => breakers.isolate('nope')).toThrow(UnknownCircuitBreakerError);
      expect(() => breakers.reset('nope')).toThrow(/No circuit breaker has the key "nope"\. Known keys: .*"payments"/);
    });

    it('answers with a @Fallback value when the route times out', async () => {
      const response = await request(app.getHttpServer()).get('/storm/fallback/value').expect(200);
      expect(response.body).toEqual({ source: 'value' });
    });

    it('answers with a @Fallback factory given the error and the handler arguments', async () => {
      const response = await request(app.getHttpServer()).get('/storm/fallback/factory').expect(200);
      expect(response.body).toEqual({ source: 'factory', cause: 'timeout', url: '/storm/fallback/factory' });
    });

    it('answers with a @Fallback provider resolved through DI', async () => {
      const response = await request(app.getHttpServer()).get('/storm/fallback/provider').expect(200);
      expect(response.body).toEqual({ source: 'provider', greeting: 'from DI', cause: 'timeout' });
    });

    it('passes the service method arguments to a @Fallback factory on a provider method', async () => {
      const response = await request(app.getHttpServer()).get('/storm/fallback/service').expect(200);
      expect(response.body).toEqual({ symbol: 'ACME', currency: 'EUR', cause: 'timeout' });
    });

    for (const [path, status] of [
      ['/storm/bulkhead', 503],
      ['/storm/bulkhead-429', 429],
    ] as const) {
      it(`rejects a call over the bulkhead with ${status} problem+json bulkhead_rejected (${path})`, async () => {
        const entered = new Promise<void>((resolve) => (gate.entered = resolve));
        const first = request(app.getHttpServer()).get(path).then((response) => response);
        await entered;

        const rejected = await request(app.getHttpServer()).get(path).expect(status);
        expect(rejected.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(rejected.body).toMatchObject({ code: 'bulkhead_rejected', status });
        expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1);

        gate.open?.();
        const accepted = await first;
        expect(accepted.status).toBe(200);
        expect(accepted.body).toEqual({ done: true });
      });
    }
  });
}
