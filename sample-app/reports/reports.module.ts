import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AccountsModule } from '../accounts/accounts.module.js';
import { AfterCommit } from '../database/after-commit.js';
import { ModelClient } from './model-client.js';
import { PreviewController } from './preview.controller.js';
import { Report } from './report.entity.js';
import { ReportGenerator } from './report-generator.service.js';
import { ReportQueue } from './report-queue.service.js';
import { ReportsController } from './reports.controller.js';
import { ReportsService } from './reports.service.js';

/** Reports: accept (idempotent, charged), generate in the background, read; plus `GET /preview`. */
@Module({
  imports: [TypeOrmModule.forFeature([Report]), AccountsModule],
  controllers: [ReportsController, PreviewController],
  providers: [ReportsService, ReportGenerator, ReportQueue, ModelClient, AfterCommit],
  exports: [ReportQueue, ModelClient],
})
export class ReportsModule {}
