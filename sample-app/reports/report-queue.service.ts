import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { attemptsOf, failureReason } from './failure-reason.js';
import { Report } from './report.entity.js';
import { ReportGenerator } from './report-generator.service.js';

/**
 * An in-process work queue: the request that accepts a report returns at once (202), and the
 * generation runs here after the transaction committed. A production service would use a durable
 * queue or an outbox table; the resilience story is the same.
 */
@Injectable()
export class ReportQueue implements BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportQueue.name);
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly generator: ReportGenerator,
    @InjectRepository(Report) private readonly reports: Repository<Report>,
  ) {}

  /** Starts generating `reportId` in the background. */
  enqueue(reportId: string): void {
    const job: Promise<void> = this.process(reportId).finally(() => this.running.delete(job));
    this.running.add(job);
  }

  /** Resolves once no generation is running (tests, shutdown). */
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
    try {
      await this.generator.generate(reportId);
      this.logger.log({ reportId, durationMs: Date.now() - started }, 'Report completed');
    } catch (error) {
      const reason = failureReason(error);
      this.logger.warn(
        { reportId, reason, durationMs: Date.now() - started, errorType: (error as Error)?.name, err: (error as Error)?.message },
        'Report failed',
      );
      await this.markFailed(reportId, reason, attemptsOf(error));
    }
  }

  private async markFailed(reportId: string, reason: Report['reason'], attempts: number | null): Promise<void> {
    try {
      await this.reports.update({ id: reportId, status: 'processing' }, { status: 'failed', reason, attempts });
    } catch (error) {
      this.logger.error({ reportId, err: (error as Error)?.message }, 'Could not mark the report as failed');
    }
  }
}
