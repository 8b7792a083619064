import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { ResilienceModule } from 'nest-resilience';
import { ResilienceConsoleModule } from 'nest-resilience/console';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl, platforms, type Platform } from '../../support/app.js';
import { CapturingLogger, OperatorGuard, ShopController, openEventStream } from './console-app.js';

const alice = { authorization: 'Bearer token-alice' };
const bob = { authorization: 'Bearer token-bob' };

async function startApp(platform: Platform, consoleOptions: Parameters<typeof ResilienceConsoleModule.register>[0], logger = new CapturingLogger(), prefix?: string) {
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot(), ResilienceConsoleModule.register(consoleOptions)],
    controllers: [ShopController],
  }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger })
      : moduleRef.createNestApplication({ logger });
  if (prefix !== undefined) app.setGlobalPrefix(prefix);
  await app.listen(0, '127.0.0.1');
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return { app, logger, url: await appUrl(app) };
}

describe.each(platforms)('resilience console (%s)', (platform) => {
  let app: INestApplication;
  let logger: CapturingLogger;
  let url: string;

  beforeAll(async () => {
    ({ app, logger, url } = await startApp(platform, { path: 'ops/resilience', guard: OperatorGuard, sampleInterval: 100 }));
  });
  afterAll(() => app?.close());

  const server = () => app.getHttpServer();

  it('refuses anonymous requests to every route: page, assets, JSON, stream and actions', async () => {
    for (const path of ['/ops/resilience', '/ops/resilience/assets/console.js', '/ops/resilience/api/state', '/ops/resilience/api/events', '/ops/resilience/api/stream']) {
      await request(server()).get(path).expect(403);
    }
    await request(server()).get('/ops/resilience/api/state').set('authorization', 'Bearer wrong').expect(403);
    await request(server()).post('/ops/resilience/api/breakers/isolate').send({ key: 'payments' }).expect(403);
    await request(server()).post('/ops/resilience/api/chaos/rules').send({}).expect(403);
  });

  it('serves the page with its own files only: base URL under its path, a strict Content-Security-Policy, no external reference', async () => {
    const page = await request(server()).get('/ops/resilience').set(alice).expect(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.text).toContain('<base href="/ops/resilience/">');
    expect(page.text).not.toMatch(/https?:\/\//);
    const script = await request(server()).get('/ops/resilience/assets/console.js').set(alice).expect(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.text).toContain("new EventSource('api/stream'");
    expect(script.text).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const style = await request(server()).get('/ops/resilience/assets/console.css').set(alice).expect(200);
    expect(style.headers['content-type']).toMatch(/^text\/css/);
    await request(server()).get('/ops/resilience/assets/package.json').set(alice).expect(404);
    await request(server()).get('/ops/resilience/assets/..%2F..%2F..%2Fpackage.json').set(alice).expect(404);
  });

  it('lists breakers with state, failure rate and sparkline, bulkheads with occupancy and budgets with retries left', async () => {
    await request(server()).get('/shop/payments').expect(200);
    await request(server()).get('/shop/flaky?fail=yes').expect(503);
    const held = [1, 2, 3].map(() => request(server()).get('/shop/slow?ms=400').then((response) => response.status));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const { body: state } = await request(server()).get('/ops/resilience/api/state').set(alice).expect(200);
    expect(state.instance.pid).toBe(process.pid);
    expect(state.breakers.find((b: any) => b.key === 'payments')).toMatchObject({ state: 'closed', failureRate: 0, shared: false });
    expect(state.bulkheads.find((b: any) => b.key === 'ShopController.slow')).toMatchObject({ active: 2, queued: 1, maxConcurrent: 2, maxQueue: 3 });
    const budget = state.budgets.find((b: any) => b.key === 'ShopController.flaky');
    // one call and one retry so far: 0.2 × 1 + 10/s × 10 s − 1 = 99.2 → 99 left
    expect(budget).toMatchObject({ calls: 1, retries: 1, remaining: 99, ratio: 0.2, shared: false });
    expect(state.sharedState).toEqual({ configured: false, available: false });
    expect(state.chaos).toEqual({ enabled: false, rules: [], targets: [] });
    expect(await Promise.all(held)).toEqual([200, 200, 200]);
  });

  it('samples calls and failures of each breaker into its sparkline', async () => {
    for (let call = 0; call < 3; call++) await request(server()).get('/shop/payments').expect(200);
    await new Promise((resolve) => setTimeout(resolve, 350));
    const { body } = await request(server()).get('/ops/resilience/api/state').set(alice).expect(200);
    const history = body.breakers.find((b: any) => b.key === 'payments').history;
    expect(history.calls.reduce((sum: number, value: number) => sum + value, 0)).toBeGreaterThanOrEqual(3);
    expect(history.failures.every((value: number) => value === 0)).toBe(true);
    expect(history.calls.length).toBeLessThanOrEqual(60);
  });

  it('isolates and resets a breaker, each action answered, listed and logged with who did it', async () => {
    const isolated = await request(server()).post('/ops/resilience/api/breakers/isolate').set(alice).send({ key: 'payments' }).expect(200);
    expect(isolated.body).toMatchObject({ actor: 'alice', action: 'isolate', target: 'payments' });
    await request(server()).get('/shop/payments').expect(503);
    const during = await request(server()).get('/ops/resilience/api/state').set(alice).expect(200);
    expect(during.body.breakers.find((b: any) => b.key === 'payments').state).toBe('isolated');
    await request(server()).post('/ops/resilience/api/breakers/reset').set(bob).send({ key: 'payments' }).expect(200);
    await request(server()).get('/shop/payments').expect(200);
    const audit = await request(server()).get('/ops/resilience/api/audit').set(alice).expect(200);
    expect(audit.body.slice(-2).map((entry: any) => [entry.actor, entry.action, entry.target])).toEqual([
      ['alice', 'isolate', 'payments'],
      ['bob', 'reset', 'payments'],
    ]);
    const logged = logger.lines.filter((line) => line.context === 'ResilienceConsole' && (line.message as any)?.event === 'console_action');
    expect(logged.slice(-2).map((line) => [line.level, (line.message as any).actor, (line.message as any).msg])).toEqual([
      ['warn', 'alice', 'alice isolated circuit breaker payments (resilience console)'],
      ['warn', 'bob', 'bob reset circuit breaker payments (resilience console)'],
    ]);
    const { body: events } = await request(server()).get('/ops/resilience/api/events').set(alice).expect(200);
    const names = events.map((event: any) => event.event);
    expect(names).toContain('breaker_opened');
    expect(names).toContain('breaker_closed');
    expect(events.find((event: any) => event.event === 'breaker_opened')).toMatchObject({ policy: 'payments', level: 'warn', detail: 'isolated' });
  });

  it('answers bad actions with problem+json: not JSON 415, no key 400, unknown key 404, chaos off 409', async () => {
    const form = await request(server()).post('/ops/resilience/api/breakers/reset').set(alice).type('form').send('key=payments').expect(415);
    expect(form.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(form.body.code).toBe('console_json_required');
    expect((await request(server()).post('/ops/resilience/api/breakers/reset').set(alice).send({}).expect(400)).body.code).toBe('console_invalid_request');
    const unknown = await request(server()).post('/ops/resilience/api/breakers/isolate').set(alice).send({ key: 'nope' }).expect(404);
    expect(unknown.body).toMatchObject({ code: 'console_unknown_breaker', detail: expect.stringContaining('"payments"') });
    const chaos = await request(server())
      .post('/ops/resilience/api/chaos/rules')
      .set(alice)
      .send({ target: { policy: 'payments' }, fault: { kind: 'latency', ms: 10 }, rate: 1 })
      .expect(409);
    expect(chaos.body.code).toBe('chaos_disabled');
  });

  it('streams the state at once, then pushes a breaker opened by failures within 2 s, its events and the actions', async () => {
    const { status, contentType, reader } = await openEventStream(`${url}/ops/resilience/api/stream`, alice);
    try {
      expect(status).toBe(200);
      expect(contentType).toMatch(/^text\/event-stream/);
      const first = await reader.next('state');
      expect(first.breakers.find((b: any) => b.key === 'payments').state).toBe('closed');
      await request(server()).post('/shop/payments/failing').send({ failing: true }).expect(201);
      const openedAt = Date.now();
      await request(server()).get('/shop/payments').expect(502);
      await request(server()).get('/shop/payments').expect(502);
      const open = await reader.next('state', (state) => state.breakers.find((b: any) => b.key === 'payments')?.state === 'open', 2_000);
      expect(Date.now() - openedAt).toBeLessThan(2_000);
      const payments = open.breakers.find((b: any) => b.key === 'payments');
      expect(payments.state).toBe('open');
      expect(payments.failureRate).toBeGreaterThan(0.5);
      expect(payments.retryAfterMs).toBeGreaterThan(55_000);
      expect(await reader.next('event', (event) => event.event === 'breaker_opened')).toMatchObject({ policy: 'payments', detail: 'consecutive' });
      await request(server()).post('/ops/resilience/api/breakers/reset').set(bob).send({ key: 'payments' }).expect(200);
      expect(await reader.next('audit')).toMatchObject({ actor: 'bob', action: 'reset' });
      await reader.next('state', (state) => state.breakers.find((b: any) => b.key === 'payments')?.state === 'closed', 2_000);
    } finally {
      reader.close();
      await request(server()).post('/shop/payments/failing').send({ failing: false });
    }
  });
});

describe('resilience console start-up and limits', () => {
  it('refuses to start without a guard, naming the fix', () => {
    expect(() => ResilienceConsoleModule.register({})).toThrow(/was given no guard.*Pass \{ guard: YourAdminGuard \}.*allowUnauthenticated: true/);
    expect(() => ResilienceConsoleModule.register({ guard: OperatorGuard, path: 'has space' })).toThrow(/path "has space"/);
    expect(() => ResilienceConsoleModule.register({ guard: OperatorGuard, maxEvents: 0 })).toThrow(/maxEvents: 0. Give a whole number from 1/);
  });

  it.each(platforms)('serves everyone with allowUnauthenticated: true, warns at start-up and records actions as anonymous (%s)', async (platform) => {
    const { app, logger } = await startApp(platform, { allowUnauthenticated: true });
    try {
      expect(logger.lines.some((line) => line.level === 'warn' && String(line.message).includes('has no guard (allowUnauthenticated: true)'))).toBe(true);
      await request(app.getHttpServer()).get('/shop/payments').expect(200);
      await request(app.getHttpServer()).get('/resilience').expect(200);
      const action = await request(app.getHttpServer()).post('/resilience/api/breakers/isolate').send({ key: 'payments' }).expect(200);
      expect(action.body.actor).toBe('anonymous');
    } finally {
      await app.close();
    }
  });

  it.each(platforms)('serves under a global prefix: the page base URL and its relative requests follow it (%s)', async (platform) => {
    const { app } = await startApp(platform, { guard: OperatorGuard }, new CapturingLogger(), 'v1');
    try {
      const page = await request(app.getHttpServer()).get('/v1/resilience').set(alice).expect(200);
      expect(page.text).toContain('<base href="/v1/resilience/">');
      await request(app.getHttpServer()).get('/v1/resilience/api/state').set(alice).expect(200);
      await request(app.getHttpServer()).get('/v1/resilience/assets/console.css').set(alice).expect(200);
    } finally {
      await app.close();
    }
  });

  it.each(platforms)('keeps at most maxStreams live pages and maxEvents events; a read-only console refuses actions (%s)', async (platform) => {
    const { app, url } = await startApp(platform, { guard: OperatorGuard, maxStreams: 1, maxEvents: 3, readOnly: true });
    const first = await openEventStream(`${url}/resilience/api/stream`, alice);
    try {
      await first.reader.next('state');
      const second = await openEventStream(`${url}/resilience/api/stream`, alice);
      second.reader.close();
      expect(second.status).toBe(503);
      await request(app.getHttpServer()).get('/shop/payments').expect(200);
      const refused = await request(app.getHttpServer()).post('/resilience/api/breakers/isolate').set(alice).send({ key: 'payments' }).expect(403);
      expect(refused.body.code).toBe('console_read_only');
      await request(app.getHttpServer()).post('/shop/payments/failing').send({ failing: true });
      for (let call = 0; call < 2; call++) await request(app.getHttpServer()).get('/shop/payments').expect(502);
      for (let call = 0; call < 3; call++) await request(app.getHttpServer()).get('/shop/flaky?fail=yes').expect(503);
      const { body: events } = await request(app.getHttpServer()).get('/resilience/api/events').set(alice).expect(200);
      expect(events).toHaveLength(3);
      expect(events.map((event: any) => event.seq)).toEqual([events[0].seq, events[0].seq + 1, events[0].seq + 2]);
      expect(events[0].seq).toBeGreaterThan(1);
    } finally {
      first.reader.close();
      await app.close();
    }
  });
});
