import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Idempotent } from 'nest-resilience';
import type { Repository } from 'typeorm';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';
import { ReportReadyEvent } from './report-ready-event.entity.js';
import type { ReportReadyMessage } from './report-ready.js';

/** Writes the row of a "report ready" event (the effect the consumer must have exactly once). */
@Injectable()
export class ReportReadyRecorder {
  private readonly logger = new Logger(ReportReadyRecorder.name);

  constructor(
    @InjectRepository(ReportReadyEvent) private readonly events: Repository<ReportReadyEvent>,
    @Inject(SAMPLE_APP_OPTIONS) private readonly options: SampleAppOptions,
  ) {}

  /**
   * The in-process path (no nats-server): records the event once per event id, like the NATS
   * consumer does (`@Idempotent` on a provider method, keyed by the event id).
   */
  @Idempotent({ key: (event: ReportReadyMessage) => event.eventId })
  async recordOnce(event: ReportReadyMessage): Promise<void> {
    await this.insert(event, 'direct');
  }

  /**
   * Inserts the row. Callers deduplicate (`@Idempotent`); the primary key on the event id is the
   * database's own guard behind them.
   */
  async insert(event: ReportReadyMessage, via: ReportReadyEvent['via']): Promise<void> {
    await this.options.hooks?.reportReadyRecording?.(event);
    await this.events.insert({ eventId: event.eventId, reportId: event.reportId, via });
    this.logger.log({ eventId: event.eventId, reportId: event.reportId, via }, 'Report ready event recorded');
  }
}
