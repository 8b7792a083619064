import { Controller, UseInterceptors, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxy, EventPattern, Payload, RmqRecordBuilder, Transport } from '@nestjs/microservices';
import { Idempotent, IdempotencyTransaction, RabbitMqAcknowledgement } from 'nest-resilience';
import { Entity, PrimaryColumn, type EntityManager } from 'typeorm';

/** An invoice that was paid. */
export interface InvoicePaid {
  readonly invoiceId: string;
}

/** One row per paid invoice. */
@Entity('invoice_paid')
export class InvoicePaidRow {
  @PrimaryColumn()
  invoiceId!: string;
}

// #region consumer
@Controller()
@UseInterceptors(RabbitMqAcknowledgement) // ack, or nack by the failure's kind, once per message
export class InvoicesConsumer {
  // <string>: Nest 12 types @EventPattern('literal') so that no parameter after the payload may have a type
  @EventPattern<string>('invoice.paid')
  @Idempotent({ transactional: true }) // key: the message's AMQP messageId
  async paid(@Payload() event: InvoicePaid, @IdempotencyTransaction() manager: EntityManager) {
    // the row and the idempotency record commit in this one transaction
    await manager.insert(InvoicePaidRow, { invoiceId: event.invoiceId });
  }
}
// #endregion consumer

/** Starts the consumer on a durable RabbitMQ queue, acknowledging manually. */
export async function startConsumer(appModule: Type<unknown>, url: string) {
  // #region start
  const app = await NestFactory.createMicroservice(appModule, {
    transport: Transport.RMQ,
    options: { urls: [url], queue: 'invoices', queueOptions: { durable: true }, noAck: false, prefetchCount: 16 },
  });
  // #endregion start
  return app;
}

/** Announces a payment: the messageId is what a redelivery and a republished copy keep. */
export function announce(client: ClientProxy, event: InvoicePaid) {
  // #region publish
  return client.emit('invoice.paid', new RmqRecordBuilder(event).setOptions({ messageId: `paid-${event.invoiceId}`, persistent: true }).build());
  // #endregion publish
}
