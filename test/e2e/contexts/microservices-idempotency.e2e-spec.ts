import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Injectable, NotFoundException, type INestMicroservice, type Type } from '@nestjs/common';
import { ClientProxyFactory, EventPattern, MessagePattern, Payload, RpcException, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { Idempotent, IdempotencyTransaction, ResilienceEvents, ResilienceModule, currentIdempotencyContext, type IdempotencyStore, type ResilienceEvent } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import type { EntityManager } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/postgres.mjs';
import { createStore, isTransactional, storeKinds, TestReport, type StoreUnderTest } from '../idempotency/stores.js';
import { until } from '../idempotency/support.js';
import { Ledger } from './support.js';

interface Order {
  readonly orderId: string;
  readonly amount: number;
  /** What the handler does after its effect: answer, refuse (an RpcException with a status), or crash. */
  readonly outcome?: 'ok' | 'refuse' | 'crash' | 'http';
  /** How long the handler takes (concurrent duplicates arrive meanwhile). */
  readonly holdMs?: number;
}

/** Every message and event handler of the class is idempotent (class-level @Idempotent), keyed by the payload. */
@Controller()
@Idempotent({ key: (order: Order) => order.orderId })
class OrdersController {
  constructor(private readonly effects: Ledger) {}

  @MessagePattern('orders.place')
  async place(@Payload() order: Order): Promise<unknown> {
    const n = this.effects.run(order.orderId);
    await sleep(order.holdMs ?? 20);
    if (order.outcome === 'refuse') throw new RpcException({ status: 402, code: 'insufficient_funds', detail: 'The card was declined.' });
    if (order.outcome === 'crash') throw new Error('bug after the effect');
    if (order.outcome === 'http') throw new NotFoundException('no such customer');
    this.effects.effects.push(order.orderId);
    return { orderId: order.orderId, amount: order.amount, n, fence: currentIdempotencyContext()?.fence };
  }

  @EventPattern('orders.shipped')
  async shipped(@Payload() order: Order): Promise<void> {
    this.effects.run(`shipped:${order.orderId}`);
    await sleep(order.holdMs ?? 20);
    if (order.outcome === 'crash') throw new Error('bug before the effect');
    this.effects.effects.push(`shipped:${order.orderId}`);
  }
}

/** The record and the handler's own row commit in one transaction. */
@Controller()
class LedgerController {
  constructor(private readonly effects: Ledger) {}

  @MessagePattern('ledger.book')
  @Idempotent({ key: (order: Order) => order.orderId, transactional: true })
  async book(@Payload() order: Order, @IdempotencyTransaction() manager: EntityManager): Promise<unknown> {
    this.effects.run(`book:${order.orderId}`);
    const row = await manager.save(TestReport, manager.create(TestReport, { requestKey: order.orderId, title: `booked ${order.amount}` }));
    if (order.outcome === 'crash') throw new Error('bug after the write');
    return { id: row.id, orderId: order.orderId };
  }
}

async function startMicroservice(store: IdempotencyStore, controllers: Type<unknown>[]) {
  const port = await freePort();
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot({ idempotency: { store } })],
    controllers,
    providers: [Ledger],
  }).compile();
  const app: INestMicroservice = moduleRef.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port }, logger: false });
  await app.listen();
  const client: ClientProxy = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
  await client.connect();
  const events: ResilienceEvent[] = [];
  app.get(ResilienceEvents).subscribe((event) => events.push(event));
  return {
    app,
    client,
    events,
    effects: app.get(Ledger),
    async close() {
      await client.close();
      await app.close();
    },
  };
}

async function errorOf(call: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    throw new Error(`expected an error, got ${JSON.stringify(await call)}`);
  } catch (error) {
    return error as Record<string, unknown>;
  }
}

describe.each(storeKinds)('@Idempotent message and event handlers over TCP, on the %s store', (kind) => {
  let store: StoreUnderTest;
  let service: Awaited<ReturnType<typeof startMicroservice>>;
  const send = (order: Order) => firstValueFrom(service.client.send('orders.place', order));
  const emit = (order: Order) => firstValueFrom(service.client.emit('orders.shipped', order));

  beforeAll(async () => {
    store = await createStore(kind);
    service = await startMicroservice(store.store, [OrdersController]);
  });

  afterAll(async () => {
    await service?.close();
    await store?.close();
  });

  it('runs a message once per key and answers the duplicate with the stored answer (fence 1)', async () => {
    const orderId = `${kind}-once`;
    const first = await send({ orderId, amount: 5 });
    const second = await send({ orderId, amount: 5 });
    expect(first).toEqual({ orderId, amount: 5, n: 1, fence: 1 });
    expect(second).toEqual(first);
    expect(service.effects.runsOf(orderId)).toBe(1);
    const replayed = service.events.find((event) => event.event === 'idempotency_replayed' && event.policy === 'orders.place');
    expect(replayed).toMatchObject({ contextType: 'rpc', operation: 'orders.place' });
    expect(replayed?.route).toBeUndefined();
  });

  it('runs concurrent duplicates once: the others wait for the first and get its answer', async () => {
    const orderId = `${kind}-concurrent`;
    const answers = await Promise.all(Array.from({ length: 6 }, () => send({ orderId, amount: 7, holdMs: 150 })));
    expect(service.effects.runsOf(orderId)).toBe(1);
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ orderId, amount: 7, n: 1, fence: 1 })));
  });

  it('fingerprints the payload: the same key with another payload is refused with 422 idempotency_key_reused', async () => {
    const orderId = `${kind}-mismatch`;
    await send({ orderId, amount: 1 });
    await expect(errorOf(send({ orderId, amount: 2 }))).resolves.toMatchObject({ status: 422, code: 'idempotency_key_reused' });
    expect(service.effects.runsOf(orderId)).toBe(1);
  });

  it("stores the handler's own RpcException with a status below 500 and replays it to the duplicate", async () => {
    const orderId = `${kind}-refused`;
    const first = await errorOf(send({ orderId, amount: 9, outcome: 'refuse' }));
    const second = await errorOf(send({ orderId, amount: 9, outcome: 'refuse' }));
    expect(first).toEqual({ status: 402, code: 'insufficient_funds', detail: 'The card was declined.' });
    expect(second).toEqual(first);
    expect(service.effects.runsOf(orderId)).toBe(1);
  });

  it("does not store an HttpException (Nest answers RPC callers a generic error for it): the duplicate runs again and gets the same answer", async () => {
    const orderId = `${kind}-http`;
    const first = await errorOf(send({ orderId, amount: 4, outcome: 'http' }));
    const second = await errorOf(send({ orderId, amount: 4, outcome: 'http' }));
    expect(first).toEqual({ status: 'error', message: 'Internal server error' });
    expect(second).toEqual(first);
    expect(service.effects.runsOf(orderId)).toBe(2);
    const released = service.events.find((event) => event.event === 'idempotency_released' && event.detail?.includes('NotFoundException'));
    expect(released).toBeDefined();
  });

  it('releases the key when the handler crashes, so the redelivered message runs again', async () => {
    const orderId = `${kind}-crash`;
    const crashed = await errorOf(send({ orderId, amount: 3, outcome: 'crash' }));
    expect(crashed).toMatchObject({ status: 'error', message: 'Internal server error' });
    const retried = await send({ orderId, amount: 3, outcome: 'crash' }).catch((error: unknown) => error);
    expect(retried).toMatchObject({ status: 'error' });
    expect(service.effects.runsOf(orderId)).toBe(2);
  });

  it('acknowledges duplicate events without running the handler, sequential and concurrent; a failed event runs again', async () => {
    const orderId = `${kind}-event`;
    await emit({ orderId, amount: 1 });
    await until(() => service.effects.effects.includes(`shipped:${orderId}`));
    await Promise.all([emit({ orderId, amount: 1 }), emit({ orderId, amount: 1 }), emit({ orderId, amount: 1 })]);
    const concurrentId = `${kind}-event-concurrent`;
    await Promise.all(Array.from({ length: 4 }, () => emit({ orderId: concurrentId, amount: 1, holdMs: 100 })));
    await until(() => service.effects.effects.includes(`shipped:${concurrentId}`));
    await until(() => service.events.filter((event) => event.event === 'idempotency_replayed' && event.policy === 'orders.shipped').length >= 6);
    expect(service.effects.runsOf(`shipped:${orderId}`)).toBe(1);
    expect(service.effects.runsOf(`shipped:${concurrentId}`)).toBe(1);

    const failingId = `${kind}-event-failing`;
    await emit({ orderId: failingId, amount: 1, outcome: 'crash' });
    await until(() => service.effects.runsOf(`shipped:${failingId}`) === 1);
    await until(() => service.events.some((event) => event.event === 'idempotency_released' && event.policy === 'orders.shipped'));
    await emit({ orderId: failingId, amount: 1 });
    await until(() => service.effects.effects.includes(`shipped:${failingId}`));
    expect(service.effects.runsOf(`shipped:${failingId}`)).toBe(2);
  });
});

describe.each(storeKinds.filter(isTransactional))('@Idempotent({ transactional: true }) on a message handler, on the %s store', (kind) => {
  let store: StoreUnderTest;
  let service: Awaited<ReturnType<typeof startMicroservice>>;
  const send = (order: Order) => firstValueFrom(service.client.send('ledger.book', order));
  const rows = (orderId: string) => store.dataSource!.getRepository(TestReport).countBy({ requestKey: orderId });

  beforeAll(async () => {
    store = await createStore(kind);
    service = await startMicroservice(store.store, [LedgerController]);
  });

  afterAll(async () => {
    await service?.close();
    await store?.close();
  });

  it("commits the handler's row with the record: one row, and the duplicate gets the stored answer", async () => {
    const orderId = `${kind}-tx-ok`;
    const first = await send({ orderId, amount: 10 });
    const second = await send({ orderId, amount: 10 });
    expect(second).toEqual(first);
    expect(await rows(orderId)).toBe(1);
    expect(service.effects.runsOf(`book:${orderId}`)).toBe(1);
  });

  it("rolls the handler's row back with the key when it crashes: no row, and the redelivery runs again", async () => {
    const orderId = `${kind}-tx-crash`;
    await errorOf(send({ orderId, amount: 10, outcome: 'crash' }));
    expect(await rows(orderId)).toBe(0);
    await send({ orderId, amount: 10 });
    expect(await rows(orderId)).toBe(1);
    expect(service.effects.runsOf(`book:${orderId}`)).toBe(2);
  });
});
