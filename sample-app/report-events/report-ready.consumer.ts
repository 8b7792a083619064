import { Controller } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Idempotent } from 'nest-resilience';
import { ReportReadyRecorder } from './report-ready.recorder.js';
import { REPORT_READY_PATTERN, type ReportReadyMessage } from './report-ready.js';

/**
 * The "report ready" consumer over NATS (the app is hybrid: `connectMicroservice` with
 * `Transport.NATS`). Events arrive at least once (a job that ran again re-emits its event), so the
 * handler is idempotent on the event id: a duplicate is acknowledged without running, one that
 * arrives while the first still runs waits for it.
 */
@Controller()
export class ReportReadyConsumer {
  constructor(private readonly recorder: ReportReadyRecorder) {}

  @EventPattern(REPORT_READY_PATTERN)
  @Idempotent({ key: (event: ReportReadyMessage) => event.eventId })
  async onReportReady(@Payload() event: ReportReadyMessage): Promise<void> {
    await this.recorder.insert(event, 'nats');
  }
}
