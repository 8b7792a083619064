import { Inject, Injectable, Optional } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { ReportReadyRecorder } from './report-ready.recorder.js';
import { REPORT_EVENTS_CLIENT, REPORT_READY_PATTERN, reportReadyEventId, type ReportReadyMessage } from './report-ready.js';

/** Announces a completed report: over NATS when the app has it, else straight to the recorder. */
@Injectable()
export class ReportReadyPublisher {
  constructor(
    private readonly recorder: ReportReadyRecorder,
    @Optional() @Inject(REPORT_EVENTS_CLIENT) private readonly client?: ClientProxy,
  ) {}

  /** Emits (or records) the one "report ready" event of the report; resolves once NATS took it. */
  async reportReady(report: { id: string; accountId: string }): Promise<void> {
    const event: ReportReadyMessage = { eventId: reportReadyEventId(report.id), reportId: report.id, accountId: report.accountId };
    if (this.client) await lastValueFrom(this.client.emit(REPORT_READY_PATTERN, event), { defaultValue: undefined });
    else await this.recorder.recordOnce(event);
  }
}
