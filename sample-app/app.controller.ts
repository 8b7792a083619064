import { Controller, Get, Inject } from '@nestjs/common';
import { CONSOLE_PATH, SAMPLE_APP_OPTIONS, type SampleAppOptions } from './sample-app.options.js';

/** `GET /`: what this instance is and where to go next. */
@Controller()
export class AppController {
  constructor(@Inject(SAMPLE_APP_OPTIONS) private readonly options: SampleAppOptions) {}

  @Get()
  info(): Record<string, unknown> {
    return {
      service: 'nest-resilience sample app',
      database: this.options.databaseUrl ? 'postgres' : 'sqlite',
      modelService: this.options.modelServiceUrl,
      reportJobs: this.options.queueRedisUrl ? 'bullmq' : 'in-process',
      reportReadyEvents: this.options.natsUrl ? 'nats' : 'direct',
      routes: [
        'POST /reports (X-Account-Id, Idempotency-Key, { "topic": string })',
        'GET /reports/:id (X-Account-Id)',
        'GET /accounts/:id',
        'GET /preview?topic=…',
        'GET /health',
        'GET /health/live',
        'GET /metrics',
        ...(this.options.console === false ? [] : [`GET /${CONSOLE_PATH} (the resilience console, demo login)`]),
      ],
    };
  }
}
