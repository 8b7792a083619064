import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Inject, UseInterceptors, type INestMicroservice } from '@nestjs/common';
import { ClientProxyFactory, Ctx, EventPattern, MessagePattern, Payload, RmqContext, RmqRecordBuilder, RpcException, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import amqp from 'amqplib';
import { Idempotent, RabbitMqAcknowledgement, assertOk, ResilienceEvents, ResilienceModule, Retryable, Timeout, currentSignal, type ResilienceEvent } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchUpstream } from '../http/support.js';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { until } from '../idempotency/support.js';
import { amqpUrl, hasRabbitMq, rabbitMqName } from '../../support/rabbitmq.js';
import { dependencyScript, errorOf, itAnswersQuotesWithTypedErrors, Ledger, QuotesController, UPSTREAM_URL } from './support.js';

// Nest's own RabbitMQ transport (Transport.RMQ: amqplib through amqp-connection-manager) against the
// test RabbitMQ node: the typed errors of request-response and events, the messaging attributes,
// and idempotent consumers keyed by the AMQP messageId property (the default) or a key function.

/** The idempotent and event handlers of the RabbitMQ tests (the request-response ones are the shared QuotesController). */
@Controller()
class BillingController {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
  ) {}

  /** Keyed by the message's AMQP messageId property (no key function). */
  @MessagePattern('invoice.issue')
  @Idempotent()
  async issue(@Payload() data: { invoiceId: string; amount: number }): Promise<unknown> {
    const n = this.ledger.run(`issue:${data.invoiceId}`);
    await sleep(100);
    return { invoiceId: data.invoiceId, amount: data.amount, n };
  }

  /** Keyed by the payload. */
  @MessagePattern('invoice.void')
  @Idempotent({ key: (data: { invoiceId: string }) => `void-${data.invoiceId}` })
  async voidInvoice(@Payload() data: { invoiceId: string }): Promise<unknown> {
    const n = this.ledger.run(`void:${data.invoiceId}`);
    await sleep(50);
    return { voided: data.invoiceId, n };
  }

  /** An event keyed by its messageId: duplicates are consumed without running the handler. */
  @EventPattern('invoice.paid')
  @Idempotent()
  async paid(@Payload() data: { invoiceId: string }): Promise<void> {
    this.ledger.run(`paid:${data.invoiceId}`);
    await sleep(100);
  }

  /** An event keyed by the payload. */
  @EventPattern('invoice.sent')
  @Idempotent({ key: (data: { eventId: string }) => data.eventId })
  async sent(@Payload() data: { eventId: string }): Promise<void> {
    this.ledger.run(`sent:${data.eventId}`);
    await sleep(50);
  }

  @EventPattern('invoice.audit')
  @Timeout(100)
  async audit(@Payload() data: { id: string }): Promise<void> {
    this.ledger.run(`audit:${data.id}`);
    await sleep(1_000, undefined, { signal: currentSignal() });
    this.ledger.run(`audited:${data.id}`);
  }

  @EventPattern('invoice.flaky')
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async flakyEvent(@Payload() _data: unknown): Promise<void> {
    this.ledger.run('invoice.flaky');
    await fetchUpstream(`${this.upstream}/down`);
  }
}

/** A payload with AMQP properties (the messageId a publisher sets, which a redelivery keeps). */
const withMessageId = <T>(data: T, messageId: string) => new RmqRecordBuilder(data).setOptions({ messageId }).build();

describe.skipIf(!hasRabbitMq)('microservices over RabbitMQ (Transport.RMQ): typed errors, messaging attributes, idempotent consumers', () => {
  const queue = rabbitMqName('billing');
  let upstream: LoopbackServer;
  let app: INestMicroservice;
  let client: ClientProxy;
  let ledger: Ledger;
  const events: ResilienceEvent[] = [];
  const send = (pattern: string, data: unknown) => firstValueFrom(client.send(pattern, data));
  const emit = (pattern: string, data: unknown) => firstValueFrom(client.emit(pattern, data));

  beforeAll(async () => {
    upstream = await startDependency(dependencyScript);
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot()],
      controllers: [QuotesController, BillingController],
      providers: [Ledger, { provide: UPSTREAM_URL, useValue: upstream.url }],
    }).compile();
    const rmq = { urls: [amqpUrl!], queue, queueOptions: { durable: false, autoDelete: true } };
    app = moduleRef.createNestMicroservice({ transport: Transport.RMQ, options: rmq, logger: false });
    await app.listen();
    ledger = app.get(Ledger);
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    client = ClientProxyFactory.create({ transport: Transport.RMQ, options: rmq });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await upstream?.close();
  });

  beforeEach(() => {
    events.length = 0;
  });

  it('@Retryable retries, then the caller gets the typed RpcProblem: status 503, code, retryAfterMs, a client-safe detail', async () => {
    const error = await errorOf(send('quote.flaky', {}));
    expect(ledger.runsOf('quote.flaky')).toBe(3);
    expect(error).toMatchObject({ status: 503, code: 'upstream_unavailable', retryAfterMs: 1000, detail: expect.any(String), type: expect.any(String) });
    expect(String(error.detail)).not.toMatch(/127\.0\.0\.1|ECONN|503 Service/);
    expect(new RpcException(error).getError()).toBe(error);
  });

  itAnswersQuotesWithTypedErrors(() => ({ send, ledger }));

  it('events and logs carry messaging.system rabbitmq, the destination (the queue) and the routing key, never an HTTP route', async () => {
    await errorOf(send('quote.flaky', {}));
    const retries = events.filter((event) => event.event === 'retry');
    expect(retries).toHaveLength(2);
    for (const retry of retries) {
      expect(retry.route).toBeUndefined();
      expect(retry).toMatchObject({
        contextType: 'rpc',
        operation: 'quote.flaky',
        attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': queue, 'messaging.rabbitmq.destination.routing_key': queue, 'messaging.operation.type': 'process', 'rpc.method': 'quote.flaky' },
      });
    }
  });

  it('an event handler: @Retryable retries, @Timeout aborts its work at the deadline, both reported with the rabbitmq attributes', async () => {
    await emit('invoice.flaky', {});
    await until(() => events.filter((event) => event.event === 'retry').length === 2, 5_000, 'two retries of the event');
    await emit('invoice.audit', { id: 'a-1' });
    await until(() => events.some((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout'), 5_000, 'the event timeout');
    await sleep(1_100);
    expect(ledger.runsOf('invoice.flaky')).toBe(3);
    expect(ledger.runsOf('audit:a-1')).toBe(1);
    expect(ledger.runsOf('audited:a-1')).toBe(0);
    const timeout = events.find((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout')!;
    expect(timeout).toMatchObject({ contextType: 'rpc', operation: 'invoice.audit', attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': queue } });
    expect(timeout.attributes).not.toHaveProperty('rpc.method');
  });

  it('@Idempotent() keys a message by its AMQP messageId: a duplicate gets the stored answer, concurrent duplicates run the handler once', async () => {
    const first = await send('invoice.issue', withMessageId({ invoiceId: 'i-1', amount: 10 }, 'msg-i-1'));
    const second = await send('invoice.issue', withMessageId({ invoiceId: 'i-1', amount: 10 }, 'msg-i-1'));
    expect(first).toEqual({ invoiceId: 'i-1', amount: 10, n: 1 });
    expect(second).toEqual(first);
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => send('invoice.issue', withMessageId({ invoiceId: 'i-2', amount: 20 }, 'msg-i-2'))));
    expect(new Set(answers.map((answer) => JSON.stringify(answer)))).toEqual(new Set([JSON.stringify({ invoiceId: 'i-2', amount: 20, n: 1 })]));
    expect({ i1: ledger.runsOf('issue:i-1'), i2: ledger.runsOf('issue:i-2') }).toEqual({ i1: 1, i2: 1 });
    expect(events.some((event) => event.event === 'idempotency_replayed')).toBe(true);
  });

  it('@Idempotent() without a messageId (nor key header) refuses the message with code idempotency_key_missing', async () => {
    const error = await errorOf(send('invoice.issue', { invoiceId: 'i-3', amount: 30 }));
    expect(error).toMatchObject({ status: 400, code: 'idempotency_key_missing' });
    expect(ledger.runsOf('issue:i-3')).toBe(0);
  });

  it('the same messageId with another payload is refused with code idempotency_key_reused (422)', async () => {
    await send('invoice.issue', withMessageId({ invoiceId: 'i-4', amount: 40 }, 'msg-i-4'));
    const error = await errorOf(send('invoice.issue', withMessageId({ invoiceId: 'i-4', amount: 41 }, 'msg-i-4')));
    expect(error).toMatchObject({ status: 422, code: 'idempotency_key_reused' });
    expect(ledger.runsOf('issue:i-4')).toBe(1);
  });

  it('@Idempotent({ key }) on a message: a key function of the payload, whatever the messageId', async () => {
    const first = await send('invoice.void', withMessageId({ invoiceId: 'v-1' }, 'a'));
    const again = await send('invoice.void', withMessageId({ invoiceId: 'v-1' }, 'b'));
    const concurrent = await Promise.all([1, 2, 3].map(() => send('invoice.void', { invoiceId: 'v-1' })));
    expect(first).toEqual({ voided: 'v-1', n: 1 });
    expect([again, ...concurrent]).toEqual([first, first, first, first]);
    expect(ledger.runsOf('void:v-1')).toBe(1);
  });

  it('@Idempotent() on an event: N duplicate deliveries of one messageId, sequential and concurrent, run the handler once', async () => {
    for (let copy = 0; copy < 3; copy++) await emit('invoice.paid', withMessageId({ invoiceId: 'p-1' }, 'msg-p-1'));
    await Promise.all([1, 2, 3, 4].map(() => emit('invoice.paid', withMessageId({ invoiceId: 'p-2' }, 'msg-p-2'))));
    await until(() => events.filter((event) => event.event === 'idempotency_replayed').length >= 5, 5_000, 'five duplicates consumed');
    await sleep(300);
    expect({ p1: ledger.runsOf('paid:p-1'), p2: ledger.runsOf('paid:p-2') }).toEqual({ p1: 1, p2: 1 });
  });

  it('@Idempotent({ key }) on an event: duplicates published by another client (raw amqplib, its own messageIds) run the handler once', async () => {
    const connection = await amqp.connect(amqpUrl!);
    try {
      const channel = await connection.createChannel();
      const packet = (eventId: string) => Buffer.from(JSON.stringify({ pattern: 'invoice.sent', data: { eventId } }));
      for (let copy = 0; copy < 4; copy++) channel.sendToQueue(queue, packet('s-1'), { messageId: `raw-${copy}` });
      await until(() => ledger.runsOf('sent:s-1') === 1 && events.filter((event) => event.event === 'idempotency_replayed').length >= 3, 5_000, 'three duplicates consumed');
      await channel.close();
    } finally {
      await connection.close();
    }
    await sleep(200);
    expect(ledger.runsOf('sent:s-1')).toBe(1);
  });
});

// noAck: false, the library's RabbitMqAcknowledgement around the handlers: every outcome settles its
// message once, counted on the broker (a queue with a dead-letter queue; once the consumer is
// closed, a message it never settled is ready again, so the queue's count shows it).

/** Consumers acknowledged by RabbitMqAcknowledgement with its defaults (transient failures requeued after their retry hint). */
@Controller()
@UseInterceptors(RabbitMqAcknowledgement)
class AcknowledgedController {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
  ) {}

  @EventPattern<string>('ack.paid')
  @Idempotent()
  async paid(@Payload() data: { invoiceId: string }): Promise<void> {
    this.ledger.run(`ack.paid:${data.invoiceId}`);
    await sleep(50);
  }

  /** A bug: not transient, dead-lettered (never redelivered to fail the same way). */
  @EventPattern<string>('ack.broken')
  @Idempotent()
  async broken(@Payload() data: { id: string }): Promise<void> {
    this.ledger.run(`ack.broken:${data.id}`);
    throw new TypeError('a bug in the handler');
  }

  /** Fails on its first run (the dependency answers 503: upstream_unavailable with retryAfterMs), succeeds on the redelivery. */
  @EventPattern<string>('ack.flaky')
  @Idempotent()
  @Timeout(5_000)
  async flaky(@Payload() data: { id: string }): Promise<void> {
    const runs = this.ledger.run(`ack.flaky:${data.id}`);
    await assertOk(await fetch(`${this.upstream}/${runs === 1 ? 'down' : 'ok'}`));
  }

  /** A handler that acknowledges its message itself: the interceptor must not acknowledge it again. */
  @EventPattern<string>('ack.self')
  async self(@Payload() data: { id: string }, @Ctx() context: RmqContext): Promise<void> {
    this.ledger.run(`ack.self:${data.id}`);
    const channel = context.getChannelRef() as { ack(message: unknown): void; once(event: 'close', listener: () => void): void };
    // a second ack of this delivery tag would make the broker close the channel (PRECONDITION_FAILED)
    channel.once('close', () => this.ledger.run('channel closed'));
    channel.ack(context.getMessage());
  }

  /** A request-response message on the same consumer: answered, then acknowledged. */
  @MessagePattern('ack.quote')
  @Idempotent()
  async quote(@Payload() data: { id: string }): Promise<unknown> {
    return { id: data.id, n: this.ledger.run(`ack.quote:${data.id}`) };
  }
}

/** Transient failures dead-lettered instead of requeued. */
@Controller()
@UseInterceptors(new RabbitMqAcknowledgement({ onTransientFailure: 'dead-letter' }))
class DeadLetteringController {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
  ) {}

  @EventPattern<string>('ack.flaky-dl')
  @Timeout(5_000)
  async flaky(@Payload() data: { id: string }): Promise<void> {
    this.ledger.run(`ack.flaky-dl:${data.id}`);
    await fetchUpstream(`${this.upstream}/down`);
  }
}

describe.skipIf(!hasRabbitMq)('RabbitMqAcknowledgement (noAck: false): acknowledged around @Idempotent, failures dead-lettered or requeued by the error classification', () => {
  const queue = rabbitMqName('acknowledged');
  const deadLetters = rabbitMqName('dead-letters');
  let upstream: LoopbackServer;
  let app: INestMicroservice | undefined;
  let client: ClientProxy;
  let ledger: Ledger;
  let connection: Awaited<ReturnType<typeof amqp.connect>>;
  let channel: Awaited<ReturnType<Awaited<ReturnType<typeof amqp.connect>>['createChannel']>>;
  const events: ResilienceEvent[] = [];
  const emit = (pattern: string, data: unknown) => firstValueFrom(client.emit(pattern, data));
  const ready = async (name: string) => (await channel.checkQueue(name)).messageCount;

  beforeAll(async () => {
    upstream = await startDependency(dependencyScript);
    connection = await amqp.connect(amqpUrl!);
    channel = await connection.createChannel();
    await channel.assertQueue(deadLetters, { durable: false });
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot()],
      controllers: [AcknowledgedController, DeadLetteringController],
      providers: [Ledger, { provide: UPSTREAM_URL, useValue: upstream.url }],
    }).compile();
    const queueOptions = { durable: false, autoDelete: false, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': deadLetters } };
    app = moduleRef.createNestMicroservice({ transport: Transport.RMQ, options: { urls: [amqpUrl!], queue, queueOptions, noAck: false, prefetchCount: 8 }, logger: false });
    await app.listen();
    ledger = app.get(Ledger);
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    client = ClientProxyFactory.create({ transport: Transport.RMQ, options: { urls: [amqpUrl!], queue, queueOptions } });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await channel?.deleteQueue(queue).catch(() => undefined);
    await channel?.deleteQueue(deadLetters).catch(() => undefined);
    await connection?.close();
    await upstream?.close();
  });

  it('duplicates of an @Idempotent() event, sequential and concurrent, run the body once and are all acknowledged (the interceptor sits outside @Idempotent)', async () => {
    for (let copy = 0; copy < 3; copy++) await emit('ack.paid', withMessageId({ invoiceId: 'a-1' }, 'ack-a-1'));
    await Promise.all([1, 2, 3].map(() => emit('ack.paid', withMessageId({ invoiceId: 'a-1' }, 'ack-a-1'))));
    await until(() => events.filter((event) => event.event === 'idempotency_replayed' && event.operation === 'ack.paid').length >= 5, 5_000, 'five duplicates answered from the store');
    expect(ledger.runsOf('ack.paid:a-1')).toBe(1);
  });

  it('a request-response message is answered, its duplicate from the store, both acknowledged', async () => {
    const send = (data: unknown) => firstValueFrom(client.send('ack.quote', data));
    expect(await send(withMessageId({ id: 'q-1' }, 'ack-q-1'))).toEqual({ id: 'q-1', n: 1 });
    expect(await send(withMessageId({ id: 'q-1' }, 'ack-q-1'))).toEqual({ id: 'q-1', n: 1 });
  });

  it('a non-transient failure is nacked without requeue: dead-lettered once, never redelivered', async () => {
    await emit('ack.broken', withMessageId({ id: 'b-1' }, 'ack-b-1'));
    await until(async () => (await ready(deadLetters)) === 1, 5_000, 'the message dead-lettered');
    await sleep(300);
    expect(ledger.runsOf('ack.broken:b-1')).toBe(1);
  });

  it("a transient failure (503: upstream_unavailable with retryAfterMs) is requeued after its retry hint by default, and the redelivery runs again (its key was released)", async () => {
    const sent = Date.now();
    await emit('ack.flaky', withMessageId({ id: 'f-1' }, 'ack-f-1'));
    await until(() => ledger.runsOf('ack.flaky:f-1') === 2, 8_000, 'the requeued message redelivered');
    // held for the problem's retryAfterMs (1 s, the mapper's default without a Retry-After) before the nack
    expect(Date.now() - sent).toBeGreaterThanOrEqual(900);
    await sleep(300);
    expect(ledger.runsOf('ack.flaky:f-1')).toBe(2);
    expect(await ready(deadLetters)).toBe(1);
  });

  it("onTransientFailure: 'dead-letter' dead-letters a transient failure instead of requeueing it", async () => {
    await emit('ack.flaky-dl', withMessageId({ id: 'd-1' }, 'ack-d-1'));
    await until(async () => (await ready(deadLetters)) === 2, 5_000, 'the transient failure dead-lettered');
    await sleep(300);
    expect(ledger.runsOf('ack.flaky-dl:d-1')).toBe(1);
  });

  it('a handler that acknowledges its message itself is not acknowledged twice (the channel stays open: the next messages are consumed)', async () => {
    await emit('ack.self', { id: 's-1' });
    await until(() => ledger.runsOf('ack.self:s-1') === 1, 5_000, 'the self-acknowledging handler');
    await emit('ack.paid', withMessageId({ invoiceId: 'a-2' }, 'ack-a-2'));
    await until(() => ledger.runsOf('ack.paid:a-2') === 1, 5_000, 'the next message after the self-acknowledged one');
    await sleep(300);
    expect({ self: ledger.runsOf('ack.self:s-1'), paid: ledger.runsOf('ack.paid:a-2'), channelClosed: ledger.runsOf('channel closed') }).toEqual({ self: 1, paid: 1, channelClosed: 0 });
  });

  it('once the consumer is closed, nothing it received is left on the queue (every delivery was settled), and the dead-letter queue holds exactly the two failures', async () => {
    await sleep(200);
    await app!.close();
    app = undefined;
    // a delivery never settled goes back to ready when its channel closes
    await sleep(500);
    expect(await ready(queue)).toBe(0);
    expect(await ready(deadLetters)).toBe(2);
  });
});
