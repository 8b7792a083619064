import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { EntityManager, Repository } from 'typeorm';
import { AccountsService } from '../accounts/accounts.service.js';
import { notFoundProblem } from '../common/problems.js';
import { AfterCommit } from '../database/after-commit.js';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';
import { Report } from './report.entity.js';
import { ReportQueue } from './report-queue.service.js';

/** What clients see of a report. */
export interface ReportView {
  id: string;
  status: Report['status'];
  topic: string;
  text?: string;
  reason?: string;
  attempts?: number;
  createdAt: string;
  updatedAt: string;
}

/** Longest `X-Demo-Hold-Ms` honoured. */
const MAX_DEMO_HOLD_MS = 3_000;

/** Accepts reports (debit + insert in the caller's transaction) and reads them back. */
@Injectable()
export class ReportsService {
  constructor(
    @InjectRepository(Report) private readonly reports: Repository<Report>,
    private readonly accounts: AccountsService,
    private readonly queue: ReportQueue,
    private readonly afterCommit: AfterCommit,
    @Inject(SAMPLE_APP_OPTIONS) private readonly options: SampleAppOptions,
  ) {}

  /**
   * Debits one credit and records the report, both through `manager` (the idempotency
   * transaction): the key, the charge and the report commit together or not at all. Generation
   * starts only once that transaction has committed.
   */
  async accept(manager: EntityManager, accountId: string, topic: string, demoHoldMs = 0): Promise<Report> {
    await this.accounts.debitOne(manager, accountId);
    const report = manager.create(Report, {
      id: randomUUID(),
      accountId,
      topic,
      status: 'processing',
      text: null,
      reason: null,
      attempts: null,
    });
    await manager.insert(Report, report);
    await this.options.hooks?.afterReportRecorded?.(report);
    if (this.options.demoHold && demoHoldMs > 0) await delay(Math.min(demoHoldMs, MAX_DEMO_HOLD_MS));
    this.afterCommit.run(manager, () => this.queue.enqueue(report.id));
    return report;
  }

  /** One of the account's reports, or a 404 problem (another account's report is not revealed). */
  async get(accountId: string, id: string): Promise<ReportView> {
    const report = await this.reports.findOneBy({ id, accountId });
    if (!report) throw notFoundProblem('report', id);
    return toView(report);
  }
}

function toView(report: Report): ReportView {
  return {
    id: report.id,
    status: report.status,
    topic: report.topic,
    ...(report.text !== null ? { text: report.text } : {}),
    ...(report.reason !== null ? { reason: report.reason } : {}),
    ...(report.attempts !== null ? { attempts: report.attempts } : {}),
    createdAt: new Date(report.createdAt).toISOString(),
    updatedAt: new Date(report.updatedAt).toISOString(),
  };
}
