import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Injectable, type INestApplication } from '@nestjs/common';
import { ClientProxyFactory, EventPattern, MessagePattern, Payload, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Idempotent, ResilienceEvents, ResilienceModule, Timeout, type ResilienceEvent } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamServer } from '../../fixtures/consumers/jetstream.server.js';
import { until } from '../idempotency/support.js';
import { hasNats, natsName, natsUrl } from '../../support/nats.js';

const stream = natsName('orders');
const subjects: Record<'settled' | 'shipped' | 'quote', string> = { settled: `${stream}.settled`, shipped: `${stream}.shipped`, quote: `${stream}.quote` };

@Injectable()
class Effects {
  readonly runs = new Map<string, number>();
  readonly effects = new Map<string, number>();
  /** Keys whose first run fails (a crash before the effect). */
  readonly failOnce = new Set<string>();

  run(key: string): number {
    const n = (this.runs.get(key) ?? 0) + 1;
    this.runs.set(key, n);
    return n;
  }
}

interface Settled {
  readonly eventId: string;
  readonly amount: number;
  readonly holdMs?: number;
}

@Controller()
class OrdersConsumer {
  constructor(private readonly effects: Effects) {}

  /** Keyed by the message's Nats-Msg-Id header (the default). */
  @EventPattern<string>(subjects.settled)
  @Idempotent()
  async settled(@Payload() event: Settled): Promise<void> {
    const n = this.effects.run(event.eventId);
    await sleep(event.holdMs ?? 10);
    if (n === 1 && this.effects.failOnce.has(event.eventId)) throw new Error('crashed before the effect');
    this.effects.effects.set(event.eventId, (this.effects.effects.get(event.eventId) ?? 0) + 1);
  }

  /** Keyed by a payload field: duplicates published under different message ids still meet. */
  @EventPattern<string>(subjects.shipped)
  @Idempotent({ key: (event: Settled) => event.eventId })
  async shipped(@Payload() event: Settled): Promise<void> {
    this.effects.run(`shipped:${event.eventId}`);
    await sleep(event.holdMs ?? 10);
    this.effects.effects.set(`shipped:${event.eventId}`, 1 + (this.effects.effects.get(`shipped:${event.eventId}`) ?? 0));
  }

  /** Request-response over Nest's NATS transport: the typed error reaches the ClientProxy caller. */
  @MessagePattern(subjects.quote)
  @Timeout(100)
  async quote(@Payload() request: { holdMs: number }): Promise<string> {
    await sleep(request.holdMs);
    return 'quoted';
  }
}

describe.skipIf(!hasNats)('NATS: JetStream consumers are idempotent by Nats-Msg-Id or a key function, request-response errors are typed', () => {
  let app: INestApplication;
  let effects: Effects;
  let nc: NatsConnection;
  let client: ClientProxy;
  const events: ResilienceEvent[] = [];
  const durable = natsName('consumer');

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], providers: [Effects], controllers: [OrdersConsumer] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({ strategy: new JetStreamServer({ servers: natsUrl!, stream, subjects: [subjects.settled, subjects.shipped], durable, ackWaitMs: 2_000 }) });
    app.connectMicroservice({ transport: Transport.NATS, options: { servers: [natsUrl!] } });
    await app.startAllMicroservices();
    await app.init();
    effects = app.get(Effects);
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    nc = await connect({ servers: natsUrl! });
    client = ClientProxyFactory.create({ transport: Transport.NATS, options: { servers: [natsUrl!] } });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await nc?.drain();
    await app?.close();
  });

  const publish = async (subject: string, event: Settled, msgId: string) => {
    const h = natsHeaders();
    h.set('x-request-id', `req-${msgId}`);
    await jetstream(nc).publish(subject, JSON.stringify(event), { msgID: msgId, headers: h });
  };

  async function drained(): Promise<void> {
    const jsm = await jetstreamManager(nc);
    await until(async () => {
      const info = await jsm.consumers.info(stream, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 10_000, 'every message acknowledged');
  }

  it('the same Nats-Msg-Id published again (after the stream’s duplicate window) is acknowledged without running the handler', async () => {
    for (let i = 0; i < 3; i++) {
      await publish(subjects.settled, { eventId: 'e-1', amount: 10 }, 'msg-e-1');
      await sleep(250);
    }
    await drained();
    expect(effects.runs.get('e-1')).toBe(1);
    expect(effects.effects.get('e-1')).toBe(1);
    const replayed = events.find((event) => event.event === 'idempotency_replayed');
    expect(replayed).toMatchObject({ contextType: 'rpc', operation: subjects.settled, requestId: 'req-msg-e-1' });
    expect(replayed?.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': subjects.settled });
  });

  it('concurrent deliveries of one key (a key function, distinct message ids) run the handler once; all are acknowledged', async () => {
    await Promise.all([1, 2, 3, 4].map((i) => publish(subjects.shipped, { eventId: 'e-2', amount: 1, holdMs: 300 }, `msg-e-2-${i}`)));
    await drained();
    expect(effects.runs.get('shipped:e-2')).toBe(1);
    expect(effects.effects.get('shipped:e-2')).toBe(1);
  });

  it('a handler that fails releases its key: the redelivery runs it again, one effect in the end', async () => {
    effects.failOnce.add('e-3');
    await publish(subjects.settled, { eventId: 'e-3', amount: 5 }, 'msg-e-3');
    await until(() => effects.effects.get('e-3') === 1, 10_000, 'the redelivery');
    await drained();
    expect(effects.runs.get('e-3')).toBe(2);
    expect(effects.effects.get('e-3')).toBe(1);
  });

  it('a @Timeout on a NATS @MessagePattern reaches the ClientProxy caller as a typed RpcProblem', async () => {
    const error = await firstValueFrom(client.send(subjects.quote, { holdMs: 1_000 })).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status: 503, code: 'timeout', title: 'Request timed out' });
    expect(await firstValueFrom(client.send(subjects.quote, { holdMs: 1 }))).toBe('quoted');
  });
});
