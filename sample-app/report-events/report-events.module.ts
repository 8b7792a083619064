import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ReportReadyEvent } from './report-ready-event.entity.js';
import { ReportReadyPublisher } from './report-ready.publisher.js';
import { ReportReadyRecorder } from './report-ready.recorder.js';
import { REPORT_EVENTS_CLIENT } from './report-ready.js';

/**
 * "Report ready" events: with `natsUrl`, emitted over NATS and recorded by the `@EventPattern`
 * consumer; without, recorded directly. Exactly one row per event either way.
 */
@Module({})
export class ReportEventsModule {
  static async register({ natsUrl }: { natsUrl?: string }): Promise<DynamicModule> {
    // @nestjs/microservices is loaded only when NATS is used (a second of start-up on a small machine)
    const nats = natsUrl ? await natsParts(natsUrl) : { imports: [], controllers: [] };
    return {
      module: ReportEventsModule,
      imports: [TypeOrmModule.forFeature([ReportReadyEvent]), ...nats.imports],
      controllers: nats.controllers,
      providers: [ReportReadyRecorder, ReportReadyPublisher],
      exports: [ReportReadyPublisher],
    };
  }
}

/** The NATS client that emits the events and the consumer that records them. */
async function natsParts(url: string): Promise<Required<Pick<DynamicModule, 'imports' | 'controllers'>>> {
  const [{ ClientsModule, Transport }, { ReportReadyConsumer }] = await Promise.all([import('@nestjs/microservices'), import('./report-ready.consumer.js')]);
  return {
    imports: [ClientsModule.register([{ name: REPORT_EVENTS_CLIENT, transport: Transport.NATS, options: { servers: [url] } }])],
    controllers: [ReportReadyConsumer],
  };
}
