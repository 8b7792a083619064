import { InjectQueue, OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Job, Queue } from 'bullmq';
import { CircuitBreaker, Idempotent, Retryable, UsePolicy } from 'nest-resilience';
import type { Repository } from 'typeorm';
import { ReportReadyPublisher } from '../report-events/report-ready.publisher.js';
import { MODEL_SERVICE_POLICY } from '../resilience/policies.js';
import { Report } from './report.entity.js';
import { ReportGenerator } from './report-generator.service.js';
import { ReportQueue, markReportFailed } from './report-queue.service.js';

/** The BullMQ queue of report generations. */
export const REPORT_JOBS_QUEUE = 'reports';

/** A report job's data: which report to generate. */
export interface ReportJobData {
  readonly reportId: string;
}

/**
 * Queue attempts of a job. The processor's own retries run inside one attempt; the library moves
 * a job that met an open circuit or a `Retry-After` to delayed, and fails it for good
 * (`UnrecoverableError`) once the policy gave up, so these only cover what the library does not
 * handle (a worker that died, an error of the processor's own).
 */
const JOB_ATTEMPTS = 3;

/**
 * Generates reports as BullMQ jobs. `@Idempotent` keys a job by its report's id: a job added again
 * for a report that was generated (a retried enqueue, a replayed outbox) completes without calling
 * the model; one arriving while the first runs waits for it. `@Retryable` and `@CircuitBreaker`
 * take the `model-service` policy (`@UsePolicy` adds its timeouts): up to 4 model calls per
 * attempt, and while the breaker is open the worker takes no new jobs (they wait in the queue with
 * their attempts intact instead of failing fast).
 */
@Processor(REPORT_JOBS_QUEUE)
export class ReportJobProcessor extends WorkerHost {
  private readonly logger = new Logger(ReportJobProcessor.name);

  constructor(
    private readonly generator: ReportGenerator,
    private readonly announcer: ReportReadyPublisher,
    @InjectRepository(Report) private readonly reports: Repository<Report>,
  ) {
    super();
  }

  @Idempotent({ key: (job: Job<ReportJobData>) => job.data.reportId })
  @UsePolicy(MODEL_SERVICE_POLICY)
  @Retryable(MODEL_SERVICE_POLICY)
  @CircuitBreaker(MODEL_SERVICE_POLICY)
  async process(job: Job<ReportJobData>): Promise<{ reportId: string; status: Report['status'] }> {
    const started = Date.now();
    const report = await this.generator.attempt(job.data.reportId);
    if (report.status === 'completed') {
      this.logger.log({ reportId: report.id, jobId: job.id, durationMs: Date.now() - started }, 'Report completed');
      // Inside the job: if NATS does not take the event, the job fails and runs again (the report
      // is already completed then, so only the event is emitted again, with the same id).
      await this.announcer.reportReady(report);
    }
    return { reportId: report.id, status: report.status };
  }

  /** A job that will not run again (no attempts left, or failed for good) marks its report failed. */
  @OnWorkerEvent('failed')
  async onFailed(job: Job<ReportJobData> | undefined, error: Error): Promise<void> {
    if (!job) return;
    const final = error.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    if (final) await markReportFailed(this.reports, this.logger, job.data.reportId, error);
  }
}

/** {@link ReportQueue} on BullMQ: each accepted report becomes one job (its id: the report's). */
@Injectable()
export class BullReportQueue extends ReportQueue implements BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportQueue.name);
  private readonly adding = new Set<Promise<unknown>>();

  constructor(@InjectQueue(REPORT_JOBS_QUEUE) private readonly queue: Queue<ReportJobData>) {
    super();
  }

  enqueue(reportId: string): void {
    // The job id is the report's: BullMQ ignores a second add while the first job is kept.
    const adding: Promise<unknown> = this.queue
      .add('generate', { reportId }, { jobId: reportId, attempts: JOB_ATTEMPTS, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { age: 86_400 }, removeOnFail: { age: 7 * 86_400 } })
      .catch((error: unknown) => this.logger.error({ reportId, err: (error as Error)?.message }, 'Could not enqueue the report'))
      .finally(() => this.adding.delete(adding));
    this.adding.add(adding);
  }

  async idle(): Promise<void> {
    while (this.adding.size > 0) await Promise.allSettled([...this.adding]);
    for (;;) {
      const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      if (Object.values(counts).every((count) => count === 0)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Jobs already in Redis survive a restart; only the adds still in flight are waited for. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.adding]);
  }
}
