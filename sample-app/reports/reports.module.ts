import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResilientHttpModule } from 'nest-resilience/http';
import { AccountsModule } from '../accounts/accounts.module.js';
import { redisConnection } from '../brokers/sample-brokers.js';
import { AfterCommit } from '../database/after-commit.js';
import { ReportEventsModule } from '../report-events/report-events.module.js';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';
import { MODEL_HTTP_CLIENT, ModelClient } from './model-client.js';
import { PreviewController } from './preview.controller.js';
import { Report } from './report.entity.js';
import { ReportGenerator } from './report-generator.service.js';
import { InProcessReportQueue, ReportQueue } from './report-queue.service.js';
import { LeaseReportsController, ReportsController } from './reports.controller.js';
import { ReportsService } from './reports.service.js';

/**
 * Reports: accept (idempotent, charged), generate in the background (a BullMQ job, or in process
 * without Redis), announce ("report ready" over NATS, or recorded directly), read; plus `GET /preview`.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Report]),
    AccountsModule,
    // The model client follows its callers' policies (retry, timeouts, breaker: see ModelClient), so
    // its own are off; its timeout only bounds a call made outside any decorated method.
    ResilientHttpModule.registerAsync({
      clients: [
        {
          name: MODEL_HTTP_CLIENT,
          inject: [SAMPLE_APP_OPTIONS],
          useFactory: (options: SampleAppOptions) => ({
            baseUrl: options.modelServiceUrl,
            retry: false,
            circuitBreaker: false,
            timeout: { total: 30_000 },
            ping: { path: '/health', timeout: options.healthPingTimeoutMs ?? 1_000 },
          }),
        },
      ],
    }),
  ],
  controllers: [PreviewController],
  providers: [ReportsService, ReportGenerator, ModelClient, AfterCommit],
  exports: [ModelClient],
})
export class ReportsModule {
  /**
   * `transactional`: `POST /reports` claims its key in the report's own transaction (the key is
   * in the database); otherwise in lease mode (the key is in Redis). `queueRedisUrl`: generation
   * runs as BullMQ jobs on that Redis (else in process); `natsUrl`: "report ready" events go over
   * that NATS (else straight to the recorder).
   */
  static async register({ transactional, queueRedisUrl, natsUrl }: { transactional: boolean; queueRedisUrl?: string; natsUrl?: string }): Promise<DynamicModule> {
    // BullMQ is loaded only when it is used: it adds about a second to the start-up on a small machine
    const queue = queueRedisUrl ? await bullQueue(queueRedisUrl) : { imports: [], providers: [{ provide: ReportQueue, useClass: InProcessReportQueue }] };
    return {
      module: ReportsModule,
      imports: [...(queue.imports ?? []), await ReportEventsModule.register({ natsUrl })],
      controllers: [transactional ? ReportsController : LeaseReportsController],
      providers: queue.providers,
      exports: [ReportQueue],
    };
  }
}

/** The BullMQ queue of the reports and its processor, on `url`. */
async function bullQueue(url: string): Promise<Pick<DynamicModule, 'imports' | 'providers'>> {
  const [{ BullModule }, { BullReportQueue, REPORT_JOBS_QUEUE, ReportJobProcessor }] = await Promise.all([import('@nestjs/bullmq'), import('./report-jobs.js')]);
  return {
    imports: [BullModule.forRoot({ connection: redisConnection(url) }), BullModule.registerQueue({ name: REPORT_JOBS_QUEUE })],
    providers: [ReportJobProcessor, { provide: ReportQueue, useClass: BullReportQueue }],
  };
}
