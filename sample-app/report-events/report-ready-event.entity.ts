import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/**
 * A "report ready" event as the consumer recorded it: one row per event id, however many times
 * the event was delivered.
 */
@Entity({ name: 'report_ready_events' })
export class ReportReadyEvent {
  /** The event's id (`report-ready:<report id>`): what the consumer is idempotent on. */
  @PrimaryColumn({ name: 'event_id', type: 'varchar', length: 64 })
  eventId!: string;

  @Column({ name: 'report_id', type: 'varchar', length: 36 })
  reportId!: string;

  /** `nats` (the `@EventPattern` consumer) or `direct` (no nats-server: recorded in process). */
  @Column({ type: 'varchar', length: 16 })
  via!: 'nats' | 'direct';

  @CreateDateColumn({ name: 'recorded_at' })
  recordedAt!: Date;
}
