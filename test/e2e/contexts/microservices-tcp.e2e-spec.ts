import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { ClientProxyFactory, Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport, type ClientProxy, type TcpContext } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { Bulkhead, Idempotent, ResilienceModule, Timeout, currentSignal } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/postgres.mjs';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { closeAll, errorOf, eventLog, itAnswersQuotesWithTypedErrors, Ledger, QuotesController, UPSTREAM_URL } from './support.js';

// The dependency answers 503 on /down, 503 + Retry-After: 2 on /busy, 200 elsewhere.
const script = (path: string) =>
  path === '/down' ? { status: 503 } : path === '/busy' ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200, body: { ok: true } };

@Controller()
class PaymentsController {
  constructor(private readonly ledger: Ledger) {}

  @MessagePattern('quote.crowded')
  @Bulkhead({ maxConcurrent: 1 })
  async crowdedQuote(@Payload() data: { holdMs: number }): Promise<unknown> {
    this.ledger.run('quote.crowded');
    await sleep(data.holdMs, undefined, { signal: currentSignal() });
    return { served: true };
  }

  @MessagePattern('payment.charge')
  @Idempotent({ key: (data: { paymentId: string }) => data.paymentId })
  async charge(@Payload() data: { paymentId: string; amount: number }): Promise<unknown> {
    const n = this.ledger.run(`charge:${data.paymentId}`);
    this.ledger.effects.push(`charge:${data.paymentId}`);
    await sleep(100);
    return { paymentId: data.paymentId, amount: data.amount, n };
  }

  @MessagePattern('payment.refund')
  @Idempotent()
  async refund(@Payload() data: { paymentId: string }, @Ctx() _context: TcpContext): Promise<unknown> {
    this.ledger.run(`refund:${data.paymentId}`);
    return { refunded: data.paymentId };
  }

  @EventPattern('payment.settled')
  @Idempotent({ key: (data: { eventId: string }) => data.eventId })
  async settled(@Payload() data: { eventId: string }): Promise<void> {
    this.ledger.run(`settled:${data.eventId}`);
    await sleep(50);
    this.ledger.effects.push(`settled:${data.eventId}`);
  }

  @EventPattern('payment.audit')
  @Timeout(100)
  async audit(@Payload() data: { id: string }): Promise<void> {
    this.ledger.run(`audit:${data.id}`);
    await sleep(1_000, undefined, { signal: currentSignal() });
    this.ledger.effects.push(`audit:${data.id}`);
  }
}

/** Waits until `check` holds (events are one-way: the caller learns nothing of the handler's end). */
async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('microservices over TCP: the same decorators and typed errors as HTTP', () => {
  let upstream: LoopbackServer;
  let app: INestMicroservice;
  let client: ClientProxy;
  let ledger: Ledger;
  let port: number;
  const { events, listen } = eventLog();

  const send = (pattern: string, data: unknown) => firstValueFrom(client.send(pattern, data));

  beforeAll(async () => {
    upstream = await startDependency(script);
    port = await freePort();
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot()],
      controllers: [QuotesController, PaymentsController],
      // the shared QuotesController counts its runs in the same ledger
      providers: [Ledger, { provide: UPSTREAM_URL, useValue: upstream.url }],
    }).compile();
    app = moduleRef.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port }, logger: false });
    await app.listen();
    ledger = app.get(Ledger);
    listen(app);
    client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    await client.connect();
  });

  afterAll(async () => {
    await closeAll(client, app, upstream);
  });

  it('@Retryable retries a failing dependency, then the caller gets a typed error: status 503, code, retryAfterMs, a client-safe detail', async () => {
    const error = await errorOf(send('quote.flaky', {}));
    expect(ledger.runsOf('quote.flaky')).toBe(3);
    expect(error).toMatchObject({ status: 503, code: 'upstream_unavailable', retryAfterMs: 1000, detail: expect.any(String) });
    expect(String(error.detail)).not.toMatch(/127\.0\.0\.1|ECONN|503 Service/);
  });

  itAnswersQuotesWithTypedErrors(() => ({ send, ledger }));

  it('a full @Bulkhead refuses the second concurrent message: code bulkhead_rejected', async () => {
    const first = send('quote.crowded', { holdMs: 300 });
    await eventually(() => ledger.runsOf('quote.crowded') === 1);
    const second = await errorOf(send('quote.crowded', { holdMs: 0 }));
    expect(second).toMatchObject({ status: 503, code: 'bulkhead_rejected' });
    await expect(first).resolves.toEqual({ served: true });
  });

  it('the RpcException reaching the caller is the one Nest clients expect (RpcException on the server side, its error object on the wire)', async () => {
    const error = await errorOf(send('quote.slow', {}));
    expect(Object.keys(error).sort()).toEqual(expect.arrayContaining(['code', 'detail', 'status']));
    expect(error).not.toMatchObject({ message: 'Internal server error' });
    expect(new RpcException(error).getError()).toBe(error);
  });

  it('events name the RPC operation, never an HTTP route, with the OpenTelemetry rpc attributes', async () => {
    await errorOf(send('quote.flaky', {}));
    const retries = events.filter((event) => event.event === 'retry');
    expect(retries).toHaveLength(2);
    for (const retry of retries) {
      expect(retry.route).toBeUndefined();
      expect(retry).toMatchObject({ contextType: 'rpc', operation: 'quote.flaky', attributes: { 'rpc.system': 'nestjs', 'rpc.method': 'quote.flaky', 'network.transport': 'tcp' } });
    }
  });

  it('@Idempotent on a @MessagePattern: a duplicate gets the stored answer without running the handler', async () => {
    const first = await send('payment.charge', { paymentId: 'p-1', amount: 10 });
    const second = await send('payment.charge', { paymentId: 'p-1', amount: 10 });
    expect(first).toEqual({ paymentId: 'p-1', amount: 10, n: 1 });
    expect(second).toEqual(first);
    expect(ledger.runsOf('charge:p-1')).toBe(1);
    expect(events.some((event) => event.event === 'idempotency_replayed')).toBe(true);
  });

  it('@Idempotent on a @MessagePattern: concurrent duplicates never run the handler twice, and each caller gets the one answer', async () => {
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => send('payment.charge', { paymentId: 'p-2', amount: 20 })));
    expect(ledger.runsOf('charge:p-2')).toBe(1);
    expect(new Set(answers.map((answer) => JSON.stringify(answer)))).toEqual(new Set([JSON.stringify({ paymentId: 'p-2', amount: 20, n: 1 })]));
  });

  it('@Idempotent on a @MessagePattern: the same key with another payload is refused with code idempotency_key_reused (422)', async () => {
    await send('payment.charge', { paymentId: 'p-3', amount: 30 });
    const error = await errorOf(send('payment.charge', { paymentId: 'p-3', amount: 31 }));
    expect(error).toMatchObject({ status: 422, code: 'idempotency_key_reused' });
    expect(ledger.runsOf('charge:p-3')).toBe(1);
  });

  it('@Idempotent() without a key function reads the key from the packet metadata (idempotency-key) and refuses a message without one', async () => {
    const missing = await errorOf(send('payment.refund', { paymentId: 'r-1' }));
    expect(missing).toMatchObject({ status: 400, code: 'idempotency_key_missing', detail: expect.stringMatching(/key/) });
    expect(ledger.runsOf('refund:r-1')).toBe(0);

    const keyed = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    keyed.setOnDispatchHook((packet) => {
      packet.metadata = { 'idempotency-key': 'refund-r-2' };
    });
    try {
      const first = await firstValueFrom(keyed.send('payment.refund', { paymentId: 'r-2' }));
      const second = await firstValueFrom(keyed.send('payment.refund', { paymentId: 'r-2' }));
      expect(second).toEqual(first);
      expect(ledger.runsOf('refund:r-2')).toBe(1);
    } finally {
      await keyed.close();
    }
  });

  it('@Idempotent on an @EventPattern: duplicates, sequential and concurrent, are acknowledged without running the handler again', async () => {
    await firstValueFrom(client.emit('payment.settled', { eventId: 'e-1' }));
    await eventually(() => ledger.effects.includes('settled:e-1'));
    await firstValueFrom(client.emit('payment.settled', { eventId: 'e-1' }));
    await Promise.all([1, 2, 3, 4].map(() => firstValueFrom(client.emit('payment.settled', { eventId: 'e-2' }))));
    await eventually(() => ledger.effects.includes('settled:e-2'));
    await eventually(() => events.filter((event) => event.event === 'idempotency_replayed').length >= 4);
    await sleep(200);
    expect(ledger.effects.filter((effect) => effect === 'settled:e-1')).toHaveLength(1);
    expect(ledger.effects.filter((effect) => effect === 'settled:e-2')).toHaveLength(1);
    expect(ledger.runsOf('settled:e-1') + ledger.runsOf('settled:e-2')).toBe(2);
  });

  it('@Timeout on an @EventPattern aborts the handler\'s work at the deadline and reports it with the rpc attributes', async () => {
    await firstValueFrom(client.emit('payment.audit', { id: 'a-1' }));
    await eventually(() => events.some((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout'));
    await sleep(1_100);
    expect(ledger.runsOf('audit:a-1')).toBe(1);
    expect(ledger.effects).not.toContain('audit:a-1');
    const timeout = events.find((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout')!;
    expect(timeout.route).toBeUndefined();
    expect(timeout).toMatchObject({ contextType: 'rpc', operation: 'payment.audit', attributes: { 'rpc.system': 'nestjs', 'rpc.method': 'payment.audit', 'network.transport': 'tcp' } });
  });
});
