import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Query, type INestApplication, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import {
  CircuitBreaker,
  CircuitBreakerService,
  Fallback,
  ResilienceModule,
  ResilienceService,
  Retryable,
  TELEMETRY_NAMES,
  Timeout,
  type ResilienceModuleOptions,
} from 'nest-resilience';
import { ResilienceConsoleModule } from 'nest-resilience/console';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerTestSdk } from '../observability/otel-sdk.js';
import { platforms, type Platform } from '../../support/app.js';
import { CapturingLogger, OperatorGuard } from '../console/console-app.js';

/** A provider method of its own: rules naming the method reach it, rules naming the route do not. */
@Injectable()
class QuotesService {
  calls = 0;

  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  async price(symbol: string): Promise<number> {
    this.calls++;
    return symbol.length;
  }
}

@Controller('chaos')
class QuotesController {
  handled = 0;

  constructor(private readonly quotes: QuotesService) {}

  @Get('quotes')
  @Timeout({ total: 5_000, attempt: 1_000 })
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  async quote(@Query('symbol') symbol = 'ACME'): Promise<{ symbol: string; price: number }> {
    this.handled++;
    return { symbol, price: await this.quotes.price(symbol) };
  }

  @Get('slow-ok')
  @Timeout({ total: 2_000, attempt: 300 })
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  @Fallback(() => ({ degraded: true }))
  degradable(): { degraded: boolean } {
    return { degraded: false };
  }

  @Get('payments')
  @CircuitBreaker({ key: 'payments', strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 })
  payments(): { paid: boolean } {
    return { paid: true };
  }
}

/** Plays the part of HTTP server instrumentation: one active server span per request, named after its x-request-id. */
function serverSpan(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  trace.getTracer('http-server').startActiveSpan(`server ${String(req.headers['x-request-id'] ?? '')}`, (span) => {
    res.once('finish', () => span.end());
    next();
  });
}

async function startApp(platform: Platform, options: ResilienceModuleOptions, logger = new CapturingLogger()) {
  @Module({ imports: [ResilienceModule.forRoot(options), ResilienceConsoleModule.register({ guard: OperatorGuard })], controllers: [QuotesController], providers: [QuotesService] })
  class ChaosAppModule implements NestModule {
    configure(consumer: MiddlewareConsumer): void {
      consumer.apply(serverSpan).forRoutes('{*splat}');
    }
  }
  const moduleRef = await Test.createTestingModule({ imports: [ChaosAppModule] }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger })
      : moduleRef.createNestApplication({ logger });
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return { app, logger };
}

const alice = { authorization: 'Bearer token-alice' };
const sdk = registerTestSdk();
afterAll(() => sdk.shutdown());

describe.each(platforms)('runtime chaos on routes (%s)', (platform) => {
  let app: INestApplication;
  let logger: CapturingLogger;
  const chaos = () => app.get(ResilienceService).chaos();
  const server = () => app.getHttpServer();

  beforeAll(async () => {
    ({ app, logger } = await startApp(platform, { chaos: { enabled: true, seed: 5 } }));
  });
  afterAll(() => app?.close());
  afterEach(() => chaos().clear());

  it('an exception injected into a route is retried, and the route answers 503 upstream_unavailable without running its handler', async () => {
    const controller = app.get(QuotesController);
    const before = controller.handled;
    chaos().inject({ id: 'quotes-down', target: { route: 'GET /chaos/quotes' }, fault: { kind: 'exception' }, rate: 1 });
    const answer = await request(server()).get('/chaos/quotes').expect(503);
    expect(answer.body.code).toBe('upstream_unavailable');
    expect(controller.handled).toBe(before);
    expect(chaos().get('quotes-down')?.injected).toBe(3);
    // the injection and the retries it caused are marked in the log
    const records = logger.lines.filter((line) => line.context === 'Resilience').map((line) => line.message as Record<string, unknown>);
    const injected = records.filter((record) => record.event === 'fault_injected' && record.policy === 'QuotesController.quote');
    expect(injected.slice(-3).map((record) => [record.outcome, record.chaos, record.detail])).toEqual([
      ['exception', true, 'rule quotes-down'],
      ['exception', true, 'rule quotes-down'],
      ['exception', true, 'rule quotes-down'],
    ]);
    expect(injected.at(-1)?.msg).toBe('Chaos: an exception (InjectedFaultError) injected into QuotesController.quote (attempt 3), rule quotes-down');
    expect(records.filter((record) => record.event === 'retry' && record.policy === 'QuotesController.quote').slice(-2).every((record) => record.chaos === true)).toBe(true);
    chaos().remove('quotes-down');
    expect((await request(server()).get('/chaos/quotes').expect(200)).body).toEqual({ symbol: 'ACME', price: 4 });
  });

  it('a rule naming the route leaves the provider methods it calls alone; a rule naming the method reaches the method only', async () => {
    const quotes = app.get(QuotesService);
    chaos().inject({ target: { route: '/chaos/quotes' }, fault: { kind: 'exception' }, rate: 1 });
    const calls = quotes.calls;
    await request(server()).get('/chaos/quotes').expect(503);
    expect(quotes.calls).toBe(calls);
    chaos().clear();
    const rule = chaos().inject({ target: { method: 'QuotesService.price' }, fault: { kind: 'exception' }, rate: 1 });
    const handled = app.get(QuotesController).handled;
    await request(server()).get('/chaos/quotes').expect(503);
    // the method's own retry made 2 attempts, both injected; its exhausted retries are not retried again by the route
    expect(chaos().get(rule.id)?.injected).toBe(2);
    expect(app.get(QuotesController).handled).toBe(handled + 1);
    expect(quotes.calls).toBe(calls);
  });

  it('an injected HTTP 503 with Retry-After is waited for by the retry and answered with its Retry-After', async () => {
    chaos().inject({ target: { route: 'GET /chaos/quotes' }, fault: { kind: 'http', status: 503, headers: { 'retry-after': '1' } }, rate: 1 });
    const started = Date.now();
    const answer = await request(server()).get('/chaos/quotes').expect(503);
    // 3 attempts, each retry after the injected Retry-After of 1 s
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(answer.body.code).toBe('upstream_unavailable');
    expect(answer.headers['retry-after']).toBe('1');
  }, 10_000);

  it('injected latency beyond the attempt timeout ends each attempt at its timeout, and the fallback answers', async () => {
    chaos().inject({ target: { route: 'GET /chaos/slow-ok' }, fault: { kind: 'latency', ms: 5_000 }, rate: 1 });
    const started = Date.now();
    const answer = await request(server()).get('/chaos/slow-ok').expect(200);
    const took = Date.now() - started;
    expect(answer.body).toEqual({ degraded: true });
    expect(took).toBeGreaterThanOrEqual(590);
    expect(took).toBeLessThan(2_000);
  });

  it('a breaker counts injected faults and opens; the fault is gone but the breaker stays open until reset', async () => {
    chaos().inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate: 1 });
    await request(server()).get('/chaos/payments').expect(503);
    await request(server()).get('/chaos/payments').expect(503);
    chaos().clear();
    expect((await request(server()).get('/chaos/payments').expect(503)).body.code).toBe('circuit_open');
    app.get(CircuitBreakerService).reset('payments');
    await request(server()).get('/chaos/payments').expect(200);
  });

  it('the console switches rules on and off, lists them with who set them and what they injected, and suggests targets', async () => {
    const on = await request(server())
      .post('/resilience/api/chaos/rules')
      .set(alice)
      .send({ id: 'console-rule', target: { route: 'GET /chaos/quotes' }, fault: { kind: 'exception' }, rate: 1 })
      .expect(200);
    expect(on.body).toMatchObject({ id: 'console-rule', enabled: true, updatedBy: 'alice', fault: { kind: 'exception', error: 'InjectedFaultError' } });
    await request(server()).get('/chaos/quotes').expect(503);
    const { body: state } = await request(server()).get('/resilience/api/state').set(alice).expect(200);
    expect(state.chaos.enabled).toBe(true);
    expect(state.chaos.rules).toEqual([expect.objectContaining({ id: 'console-rule', injected: 3 })]);
    expect(state.chaos.targets).toEqual(expect.arrayContaining(['GET /chaos/quotes', 'QuotesController.quote', 'QuotesService.price']));
    await request(server()).post('/resilience/api/chaos/rules').set(alice).send({ ...on.body, fault: { kind: 'exception' }, enabled: false }).expect(200);
    await request(server()).get('/chaos/quotes').expect(200);
    await request(server()).delete('/resilience/api/chaos/rules/console-rule').set(alice).expect(204);
    await request(server()).delete('/resilience/api/chaos/rules/console-rule').set(alice).expect(400);
    const bad = await request(server()).post('/resilience/api/chaos/rules').set(alice).send({ target: {}, fault: { kind: 'latency', ms: 1 }, rate: 1 }).expect(400);
    expect(bad.body.detail).toMatch(/empty target/);
    const { body: audit } = await request(server()).get('/resilience/api/audit').set(alice).expect(200);
    expect(audit.slice(-3).map((entry: any) => [entry.actor, entry.action, entry.target])).toEqual([
      ['alice', 'chaos_on', 'console-rule'],
      ['alice', 'chaos_off', 'console-rule'],
      ['alice', 'chaos_remove', 'console-rule'],
    ]);
  });

  it('marks what chaos caused in spans and metrics (resilience.chaos=true), and reports each rule switched on as a gauge', async () => {
    chaos().inject({ id: 'marked', target: { route: 'GET /chaos/quotes' }, fault: { kind: 'exception' }, rate: 1 });
    const requestId = `chaos-${platform}-${Date.now()}`;
    await request(server()).get('/chaos/quotes').set('x-request-id', requestId).expect(503);
    // the request's span: marked, with one span event per injected fault and per retry it caused
    const span = sdk.spans().find((candidate) => candidate.name === `server ${requestId}`);
    expect(span?.attributes['resilience.chaos']).toBe(true);
    const marked = span!.events.filter((event) => event.attributes?.['resilience.chaos'] === true).map((event) => event.name);
    expect(marked).toEqual(['resilience.fault_injected', 'resilience.retry', 'resilience.fault_injected', 'resilience.retry', 'resilience.fault_injected', 'resilience.give_up']);
    const events = await sdk.points(TELEMETRY_NAMES.eventsCounter);
    const injected = events.find((point) => point.attributes['event.name'] === 'fault_injected' && point.attributes.policy === 'QuotesController.quote');
    expect(injected?.attributes['resilience.chaos']).toBe(true);
    const retries = events.filter((point) => point.attributes['event.name'] === 'retry' && point.attributes.policy === 'QuotesController.quote');
    expect(retries.some((point) => point.attributes['resilience.chaos'] === true)).toBe(true);
    const gauge = await sdk.points(TELEMETRY_NAMES.chaosInjectionRate);
    expect(gauge).toEqual([{ attributes: { 'chaos.rule': 'marked', 'chaos.fault': 'exception', 'chaos.target': 'route GET /chaos/quotes' }, value: 1 }]);
    // switched off, the rule's series drops to 0 (the SDK would otherwise repeat its last rate for ever)
    chaos().switch('marked', false);
    expect((await sdk.points(TELEMETRY_NAMES.chaosInjectionRate)).map((point) => point.value)).toEqual([0]);
  });
});

describe('runtime chaos off and in production', () => {
  it('is off by default: no rule can be set, and the console says so', async () => {
    const { app } = await startApp('express', {});
    try {
      expect(() => app.get(ResilienceService).chaos()).toThrow(/Runtime chaos is off in this application. Enable it with ResilienceModule.forRoot\(\{ chaos: \{ enabled: true \} \}\)/);
      const { body } = await request(app.getHttpServer()).get('/resilience/api/chaos').set(alice).expect(200);
      expect(body).toEqual({ enabled: false, rules: [], targets: [] });
    } finally {
      await app.close();
    }
  });

  it('is refused at start-up with NODE_ENV=production unless allowInProduction, and rules given at start-up are checked', async () => {
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await expect(startApp('express', { chaos: { enabled: true } })).rejects.toThrow(/chaos.enabled: true\) with NODE_ENV=production.*Set chaos.allowInProduction: true/);
      const { app } = await startApp('express', { chaos: { enabled: true, allowInProduction: true, rules: [{ id: 'boot', target: { policy: 'payments' }, fault: { kind: 'latency', ms: 5 }, rate: 0.1 }] } });
      expect(app.get(ResilienceService).chaos().rules()).toEqual([expect.objectContaining({ id: 'boot', updatedBy: 'options' })]);
      await app.close();
    } finally {
      process.env.NODE_ENV = previous;
    }
    await expect(startApp('express', { chaos: { enabled: true, rules: [{ target: { policy: 'p' }, fault: { kind: 'latency', ms: 1 }, rate: 2 }] } })).rejects.toThrow(/rate 2/);
    await expect(startApp('express', { chaos: { rules: [{ target: { policy: 'p' }, fault: { kind: 'latency', ms: 1 }, rate: 1 }] } })).rejects.toThrow(/chaos.enabled is not true, so the rules would never run/);
  });
});
