import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { hasNats, natsName, natsUrl } from '../../support/nats.js';
import { amqpUrl, hasRabbitMq, rabbitMqName } from '../../support/rabbitmq.js';

// The brokers `npm test` starts for the context tests (or NATS_URL / AMQP_URL): each one does what
// the redelivery tests rely on, so a broken harness fails here rather than as a puzzling consumer test.

describe.skipIf(!hasNats)('the test nats-server', () => {
  it('has JetStream on: a published message is stored, and redelivered after a nak until acknowledged', async () => {
    const nc = await connectNats({ servers: natsUrl });
    try {
      const stream = natsName('harness');
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      await jsm.consumers.add(stream, { durable_name: 'worker', ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      const ack = await js.publish(`${stream}.orders`, 'hello', { msgID: 'order-1' });
      const duplicate = await js.publish(`${stream}.orders`, 'hello', { msgID: 'order-1' });
      expect({ stored: ack.seq, duplicate: duplicate.duplicate }).toEqual({ stored: 1, duplicate: true });

      const consumer = await js.consumers.get(stream, 'worker');
      const first = await consumer.next({ expires: 5_000 });
      expect(first?.string()).toBe('hello');
      first!.nak();
      const again = await consumer.next({ expires: 5_000 });
      expect({ body: again?.string(), deliveries: again?.info.deliveryCount, id: again?.headers?.get('Nats-Msg-Id') }).toEqual({ body: 'hello', deliveries: 2, id: 'order-1' });
      again!.ack();
      await jsm.streams.delete(stream);
    } finally {
      await nc.close();
    }
  });
});

describe.skipIf(!hasRabbitMq)('the test RabbitMQ node', () => {
  it('delivers a message, and redelivers it (flagged) after the consumer rejects it with requeue', async () => {
    const connection = await amqp.connect(amqpUrl!);
    try {
      const channel = await connection.createChannel();
      const queue = rabbitMqName('harness');
      await channel.assertQueue(queue, { durable: false, autoDelete: true });
      channel.sendToQueue(queue, Buffer.from('hello'), { messageId: 'order-1' });
      const deliveries: Array<{ body: string; redelivered: boolean; messageId: unknown }> = [];
      await new Promise<void>((resolve) => {
        void channel.consume(queue, (message) => {
          if (!message) return;
          deliveries.push({ body: message.content.toString(), redelivered: message.fields.redelivered, messageId: message.properties.messageId });
          if (deliveries.length === 1) channel.nack(message, false, true);
          else {
            channel.ack(message);
            resolve();
          }
        });
      });
      expect(deliveries).toEqual([
        { body: 'hello', redelivered: false, messageId: 'order-1' },
        { body: 'hello', redelivered: true, messageId: 'order-1' },
      ]);
      await channel.close();
    } finally {
      await connection.close();
    }
  });
});
