import 'reflect-metadata';
import { Body, Controller, Post, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import { Idempotent, ResilienceModule } from 'nest-resilience';
import { HttpClient, InjectHttpClient, ResilientHttpModule } from 'nest-resilience/http';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

/** A payment provider that deduplicates on Idempotency-Key: one charge per key, replayed after. */
async function startDeduplicatingProvider(): Promise<Upstream & { readonly charges: () => number }> {
  const byKey = new Map<string, { id: number }>();
  let charges = 0;
  const upstream = await startUpstream((req) => {
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string') return { status: 400, body: { error: 'Idempotency-Key required' } };
    let charge = byKey.get(key);
    if (!charge) {
      charges++;
      charge = { id: charges };
      byKey.set(key, charge);
    }
    return { status: 201, body: charge };
  });
  return Object.assign(upstream, { charges: () => charges });
}

/** Whether the next run of the handler crashes after the downstream call (its effect is done). */
const crash = { next: false };

@Controller('orders')
class OrdersController {
  constructor(@InjectHttpClient('payments') private readonly payments: HttpClient) {}

  @Post()
  @Idempotent()
  async create(@Body() body: { amount: number }) {
    const charge = await this.payments.post<{ id: number }>('/charges', { amount: body.amount }, { callName: 'charge' });
    const refund = await this.payments.post<{ id: number }>('/refunds', { amount: 0 }, { callName: 'zero-refund' });
    if (crash.next) {
      crash.next = false;
      // the process dies after the provider charged: the stored key is released (5xx)
      throw new ServiceUnavailableException('crashed after charging');
    }
    return { charge: charge.data.id, refund: refund.data.id };
  }
}

describe.each(platforms)('stable outgoing Idempotency-Keys inside @Idempotent() requests on %s', (platform) => {
  let app: INestApplication;
  let provider: Awaited<ReturnType<typeof startDeduplicatingProvider>>;

  beforeAll(async () => {
    provider = await startDeduplicatingProvider();
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot(), ResilientHttpModule.register({ clients: { payments: { baseUrl: provider.url } } })],
      controllers: [OrdersController],
    });
  });
  afterAll(async () => {
    await app.close();
    await provider.close();
  });
  beforeEach(() => {
    crash.next = false;
  });

  it('a crash after the downstream call and a retry of the incoming request cause one downstream effect', async () => {
    const before = provider.charges();
    crash.next = true;
    await request(app.getHttpServer()).post('/orders').set('idempotency-key', 'order-1').send({ amount: 5 }).expect(503);
    const retried = await request(app.getHttpServer()).post('/orders').set('idempotency-key', 'order-1').send({ amount: 5 }).expect(201);
    // one charge and one refund: the re-run sent the same downstream keys, and the provider replayed
    expect(provider.charges() - before).toBe(2);
    const charges = provider.received.filter((r) => r.path === '/charges').slice(-2);
    expect(charges[0]!.headers['idempotency-key']).toBe(charges[1]!.headers['idempotency-key']);
    expect(charges[0]!.headers['idempotency-key']).toMatch(/^[0-9a-f]{48}$/);
    expect(retried.body).toEqual({ charge: before + 1, refund: before + 2 });
  });

  it('derives different keys for different incoming keys and for different calls of one handler', async () => {
    const from = provider.received.length;
    await request(app.getHttpServer()).post('/orders').set('idempotency-key', 'order-2').send({ amount: 5 }).expect(201);
    await request(app.getHttpServer()).post('/orders').set('idempotency-key', 'order-3').send({ amount: 5 }).expect(201);
    const keys = provider.received.slice(from).map((r) => r.headers['idempotency-key']);
    expect(new Set(keys).size).toBe(4);
  });
});
