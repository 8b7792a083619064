import { Body, Controller, Get, Headers, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { Idempotent, IdempotencyTransaction } from 'nest-resilience';
import { DataSource, type EntityManager } from 'typeorm';
import { AccountGuard, type AccountPrincipal } from '../accounts/account.guard.js';
import { CurrentAccount } from '../accounts/current-account.decorator.js';
import { CreateReportDto } from './create-report.dto.js';
import { ReportsService, type ReportView } from './reports.service.js';

/** Express and Fastify both have `header(name, value)` on their response objects. */
interface HeaderWriter {
  header(name: string, value: string): unknown;
}

/** `POST /reports` and `GET /reports/:id`, for the account named in `X-Account-Id`. */
@Controller('reports')
@UseGuards(AccountGuard)
export class ReportsController {
  constructor(private readonly reportsService: ReportsService) {}

  /**
   * Accepts a report for generation: 202 with its id and a `Location` to poll.
   *
   * `Idempotency-Key` is required. The key is scoped to the caller's account; the claim, the
   * credit debit and the report row commit in one transaction, so a client that retries after a
   * lost response gets the first answer replayed (`Idempotent-Replayed: true`) and is charged once.
   */
  @Post()
  @HttpCode(202)
  @Idempotent({ transactional: true, scope: (req: { user: AccountPrincipal }) => req.user.accountId })
  async create(
    @Body() body: CreateReportDto,
    @CurrentAccount() accountId: string,
    @IdempotencyTransaction() manager: EntityManager,
    @Res({ passthrough: true }) response: HeaderWriter,
    @Headers('x-demo-hold-ms') demoHoldMs?: string,
  ): Promise<{ id: string; status: 'processing' }> {
    const report = await this.reportsService.accept(manager, accountId, body.topic, Number(demoHoldMs) || 0);
    response.header('Location', `/reports/${report.id}`);
    return { id: report.id, status: 'processing' };
  }

  /** The report and its status: `processing`, then `completed` (with `text`) or `failed` (with `reason`). */
  @Get(':id')
  get(@CurrentAccount() accountId: string, @Param('id') id: string): Promise<ReportView> {
    return this.reportsService.get(accountId, id);
  }
}

/**
 * `POST /reports` in lease mode, for an idempotency store without transactions (Redis): the
 * claim is recorded first, the debit and the report commit in their own transaction, then the
 * response is stored. A duplicate still gets 409 while the first runs and the replay after it;
 * only a crash between that commit and the stored response lets a retry charge again after the
 * lease (60 s), the limit transactional mode removes.
 */
@Controller('reports')
@UseGuards(AccountGuard)
export class LeaseReportsController {
  constructor(
    private readonly reportsService: ReportsService,
    private readonly dataSource: DataSource,
  ) {}

  @Post()
  @HttpCode(202)
  @Idempotent({ scope: (req: { user: AccountPrincipal }) => req.user.accountId })
  async create(
    @Body() body: CreateReportDto,
    @CurrentAccount() accountId: string,
    @Res({ passthrough: true }) response: HeaderWriter,
    @Headers('x-demo-hold-ms') demoHoldMs?: string,
  ): Promise<{ id: string; status: 'processing' }> {
    const report = await this.dataSource.transaction((manager) => this.reportsService.accept(manager, accountId, body.topic, Number(demoHoldMs) || 0));
    response.header('Location', `/reports/${report.id}`);
    return { id: report.id, status: 'processing' };
  }

  /** As {@link ReportsController.get}. */
  @Get(':id')
  get(@CurrentAccount() accountId: string, @Param('id') id: string): Promise<ReportView> {
    return this.reportsService.get(accountId, id);
  }
}
