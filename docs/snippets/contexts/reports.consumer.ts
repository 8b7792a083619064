import { Controller, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, Payload } from '@nestjs/microservices';
import type { JetStreamClient } from '@nats-io/jetstream';
import { Idempotent, currentIdempotencyTransaction } from 'nest-resilience';
import { Column, Entity, PrimaryColumn, type EntityManager } from 'typeorm';
import { JetStreamServer } from './jetstream.server.js';

/** A report that is ready. */
export interface ReportReady {
  readonly reportId: string;
}

/** One row per report that was announced ready. */
@Entity('report_ready')
export class ReportReadyRow {
  @PrimaryColumn()
  reportId!: string;

  @Column({ default: () => 'CURRENT_TIMESTAMP' })
  at!: Date;
}

// #region consumer
@Controller()
export class ReportsConsumer {
  @EventPattern('reports.ready')
  @Idempotent({ transactional: true }) // key: the message's Nats-Msg-Id
  async ready(@Payload() event: ReportReady) {
    // the transaction the record commits in: the row and the record are written together
    const manager = currentIdempotencyTransaction<EntityManager>()!;
    await manager.insert(ReportReadyRow, { reportId: event.reportId });
  }
}
// #endregion consumer

/** Starts the consumer on JetStream. */
export async function startConsumer(appModule: Type<unknown>, servers: string) {
  // #region start
  const app = await NestFactory.createMicroservice(appModule, {
    strategy: new JetStreamServer({ servers, stream: 'REPORTS', subjects: ['reports.ready'], durable: 'reports', ackWaitMs: 30_000 }),
  });
  // #endregion start
  return app;
}

/** Announces a report: the message id is the one a redelivery and a retried publish keep. */
export async function announce(js: JetStreamClient, event: ReportReady) {
  // #region publish
  await js.publish('reports.ready', JSON.stringify(event), { msgID: `report-${event.reportId}` });
  // #endregion publish
}
