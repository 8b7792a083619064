import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { ReportReadyPublisher } from '../report-events/report-ready.publisher.js';
import { attemptsOf, failureReason } from './failure-reason.js';
import { Report } from './report.entity.js';
import { ReportGenerator } from './report-generator.service.js';

/**
 * Where accepted reports go to be generated: a BullMQ queue (`BullReportQueue`) when the app has
 * Redis, else {@link InProcessReportQueue}. The request that accepts a report returns at once (202).
 */
export abstract class ReportQueue {
  /** Schedules the generation of `reportId` (called once the report's transaction committed). */
  abstract enqueue(reportId: string): void;
  /** Resolves once no accepted report is left to generate (tests). */
  abstract idle(): Promise<void>;
}

/** Marks a report whose generation gave up as `failed`, with why; logs instead of throwing. */
export async function markReportFailed(reports: Repository<Report>, logger: Logger, reportId: string, error: unknown): Promise<void> {
  const reason = failureReason(error);
  logger.warn({ reportId, reason, errorType: (error as Error)?.name, err: (error as Error)?.message }, 'Report failed');
  try {
    await reports.update({ id: reportId, status: 'processing' }, { status: 'failed', reason, attempts: attemptsOf(error) });
  } catch (updateError) {
    logger.error({ reportId, err: (updateError as Error)?.message }, 'Could not mark the report as failed');
  }
}

/**
 * The fallback without Redis: generation runs in this process after the transaction committed,
 * under the `model-service` policy, then announces the report. Nothing survives a restart (a
 * report accepted just before one stays `processing`); the BullMQ queue is the durable path.
 */
@Injectable()
export class InProcessReportQueue extends ReportQueue implements BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportQueue.name);
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly generator: ReportGenerator,
    private readonly announcer: ReportReadyPublisher,
    @InjectRepository(Report) private readonly reports: Repository<Report>,
  ) {
    super();
  }

  enqueue(reportId: string): void {
    const job: Promise<void> = this.process(reportId).finally(() => this.running.delete(job));
    this.running.add(job);
  }

  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Lets running generations finish (each is bounded by its deadline) before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.running.size > 0) this.logger.log(`Waiting for ${this.running.size} report generation(s) to finish`);
    await this.idle();
  }

  private async process(reportId: string): Promise<void> {
    const started = Date.now();
    let report: Report;
    try {
      report = await this.generator.generate(reportId);
      this.logger.log({ reportId, durationMs: Date.now() - started }, 'Report completed');
    } catch (error) {
      await markReportFailed(this.reports, this.logger, reportId, error);
      return;
    }
    if (report.status !== 'completed') return;
    try {
      await this.announcer.reportReady(report);
    } catch (error) {
      this.logger.error({ reportId, err: (error as Error)?.message }, 'Could not announce the report');
    }
  }
}
