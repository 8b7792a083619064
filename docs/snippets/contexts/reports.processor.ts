import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import { CircuitBreaker, Idempotent, Retryable } from 'nest-resilience';

/** What a report job asks for. */
export interface ReportRequest {
  readonly reportId: string;
}

/** Generates reports (calls a dependency that may fail). */
@Injectable()
export class ReportsService {
  async generate(request: ReportRequest) {
    return { reportId: request.reportId, status: 'ready' };
  }
}

// #region processor
@Processor('reports')
@Idempotent({ key: (job: Job<ReportRequest>) => job.data.reportId, transactional: true })
export class ReportsProcessor extends WorkerHost {
  constructor(private readonly reports: ReportsService) {
    super();
  }

  @Retryable({ maxAttempts: 3 })
  @CircuitBreaker()
  async process(job: Job<ReportRequest>) {
    return this.reports.generate(job.data);
  }
}
// #endregion processor
