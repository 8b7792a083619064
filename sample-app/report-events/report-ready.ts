/** The NATS subject (Nest event pattern) of "report ready" events. */
export const REPORT_READY_PATTERN = 'report.ready';

/** Injection token of the NATS `ClientProxy` that emits the events (absent without NATS). */
export const REPORT_EVENTS_CLIENT = 'REPORT_EVENTS_CLIENT';

/** What a "report ready" event carries. */
export interface ReportReadyMessage {
  /**
   * The event's id, derived from the report's (so a job that runs again after a crash emits the
   * same event, and the consumer records it once).
   */
  readonly eventId: string;
  readonly reportId: string;
  readonly accountId: string;
}

/** The id of the one "report ready" event of `reportId`. */
export function reportReadyEventId(reportId: string): string {
  return `report-ready:${reportId}`;
}
