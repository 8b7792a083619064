import { Controller, Injectable, UseInterceptors, type CallHandler, type ExecutionContext, type NestInterceptor, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxy, EventPattern, Payload, RmqContext, RmqRecordBuilder, Transport } from '@nestjs/microservices';
import { Idempotent, IdempotencyTransaction } from 'nest-resilience';
import { tap, type Observable } from 'rxjs';
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

// #region acknowledge
/**
 * Acknowledges a RabbitMQ message once its handler settled (`noAck: false`), around the handler:
 * a duplicate that @Idempotent answers without running the handler's body is acknowledged too.
 * A failure is requeued: the redelivery runs again (its key was released).
 */
@Injectable()
export class RmqAcknowledge implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const rmq = context.switchToRpc().getContext<RmqContext>();
    const channel = rmq.getChannelRef();
    return next.handle().pipe(
      tap({
        complete: () => channel.ack(rmq.getMessage()),
        error: () => channel.nack(rmq.getMessage(), false, true),
      }),
    );
  }
}
// #endregion acknowledge

// #region consumer
@Controller()
@UseInterceptors(RmqAcknowledge)
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
