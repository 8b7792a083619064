import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Resilience, UsePolicy } from 'nest-resilience';
import type { Repository } from 'typeorm';
import { MODEL_SERVICE_POLICY } from '../resilience/policies.js';
import { ModelClient } from './model-client.js';
import { Report } from './report.entity.js';

/**
 * Generates a report's text with the model service, in the background: as a BullMQ job
 * (`ReportJobProcessor`, which brings the policies) or, without Redis, in process ({@link generate}).
 */
@Injectable()
export class ReportGenerator {
  constructor(
    @InjectRepository(Report) private readonly reports: Repository<Report>,
    private readonly model: ModelClient,
  ) {}

  /**
   * The in-process path. `@UsePolicy('model-service')` applies the named policy of
   * `ResilienceModule.forRoot({ policies })` (see `resilience/policies.ts`), equivalent to
   * `@Timeout({ total: 8000, attempt: 2000 }) @Retryable({ maxAttempts: 4 }) @CircuitBreaker('model-service')`
   * but configurable in one place: a deadline of 8 s for the whole generation, 2 s per model call,
   * up to 4 calls with exponential backoff and jitter (the model's `Retry-After` honoured), and a
   * breaker that opens after consecutive failures, shared with `GET /preview`.
   * Throws when the policies give up.
   */
  @UsePolicy(MODEL_SERVICE_POLICY)
  async generate(reportId: string): Promise<Report> {
    return this.attempt(reportId);
  }

  /**
   * One attempt, under the caller's policies: calls the model unless the report is no longer
   * `processing` (a job that ran again), stores the text, returns the report as it now is.
   */
  async attempt(reportId: string): Promise<Report> {
    const report = await this.reports.findOneByOrFail({ id: reportId });
    if (report.status !== 'processing') return report;
    // The fetch inside follows this attempt's AbortSignal: a timed-out call is really cancelled.
    const text = await this.model.generate(report.topic);
    const attempts = Resilience.current()?.attempt ?? 1;
    await this.reports.update({ id: reportId, status: 'processing' }, { status: 'completed', text, attempts });
    return this.reports.findOneByOrFail({ id: reportId });
  }
}
