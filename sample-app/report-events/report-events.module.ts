import { Module, type DynamicModule } from '@nestjs/common';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ReportReadyEvent } from './report-ready-event.entity.js';
import { ReportReadyConsumer } from './report-ready.consumer.js';
import { ReportReadyPublisher } from './report-ready.publisher.js';
import { ReportReadyRecorder } from './report-ready.recorder.js';
import { REPORT_EVENTS_CLIENT } from './report-ready.js';

/**
 * "Report ready" events: with `natsUrl`, emitted over NATS and recorded by the `@EventPattern`
 * consumer; without, recorded directly. Exactly one row per event either way.
 */
@Module({})
export class ReportEventsModule {
  static register({ natsUrl }: { natsUrl?: string }): DynamicModule {
    return {
      module: ReportEventsModule,
      imports: [
        TypeOrmModule.forFeature([ReportReadyEvent]),
        ...(natsUrl ? [ClientsModule.register([{ name: REPORT_EVENTS_CLIENT, transport: Transport.NATS, options: { servers: [natsUrl] } }])] : []),
      ],
      controllers: natsUrl ? [ReportReadyConsumer] : [],
      providers: [ReportReadyRecorder, ReportReadyPublisher],
      exports: [ReportReadyPublisher],
    };
  }
}
