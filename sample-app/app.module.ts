import { Global, Module, RequestMethod, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResilienceModule, type IdempotencyModuleOptions } from 'nest-resilience';
import { ResilienceConsoleModule } from 'nest-resilience/console';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { DataSource } from 'typeorm';
import { AccountsModule } from './accounts/accounts.module.js';
import { AppController } from './app.controller.js';
import { DemoConsoleGuard } from './console/demo-console.guard.js';
import { HostHeaderMiddleware } from './common/host-header.middleware.js';
import { JsonBodyMiddleware } from './common/json-body.middleware.js';
import { ProblemDetailsFilter } from './common/problem-details.filter.js';
import { createValidationPipe } from './common/validation.pipe.js';
import { databaseOptions } from './database/database.options.js';
import { HealthModule } from './health/health.module.js';
import { LoggingModule } from './logging/logging.module.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { registerMetrics } from './metrics/telemetry.js';
import { ReportsModule } from './reports/reports.module.js';
import { resiliencePolicies } from './resilience/policies.js';
import { CONSOLE_PATH, DEFAULT_CONSOLE_LOGIN, SAMPLE_APP_OPTIONS, type SampleAppOptions } from './sample-app.options.js';

/** Makes the {@link SampleAppOptions} injectable everywhere. */
@Global()
@Module({})
class SampleOptionsModule {
  static register(options: SampleAppOptions): DynamicModule {
    return {
      module: SampleOptionsModule,
      providers: [{ provide: SAMPLE_APP_OPTIONS, useValue: options }],
      exports: [SAMPLE_APP_OPTIONS],
    };
  }
}

/**
 * The reports service: accounts with credits, idempotent report creation, background generation
 * by the model service under timeouts, retries and a circuit breaker, health and metrics.
 */
@Module({})
export class AppModule implements NestModule {
  /** Every route: HTTP/1.1 requests carry a Host, request bodies are UTF-8 JSON (problem+json otherwise). */
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HostHeaderMiddleware, JsonBodyMiddleware).forRoutes({ path: '{*splat}', method: RequestMethod.ALL });
  }

  static forRoot(options: SampleAppOptions): DynamicModule {
    // The metrics SDK must exist before the library records its first event.
    registerMetrics();
    return {
      module: AppModule,
      imports: [
        SampleOptionsModule.register(options),
        LoggingModule.forRoot(options),
        TypeOrmModule.forRoot(databaseOptions(options)),
        ResilienceModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({
            policies: resiliencePolicies(options),
            idempotency: idempotencyOptions(options, dataSource),
            // rules are switched at runtime (the console, `npm run demo`); none at start-up
            chaos: { enabled: options.chaos ?? true },
          }),
        }),
        AccountsModule,
        ReportsModule.register({ transactional: !options.redisUrl, queueRedisUrl: options.queueRedisUrl, natsUrl: options.natsUrl }),
        HealthModule,
        ...consoleModule(options),
      ],
      controllers: [AppController, MetricsController],
      providers: [
        { provide: APP_PIPE, useFactory: createValidationPipe },
        { provide: APP_FILTER, useClass: ProblemDetailsFilter },
      ],
    };
  }
}

/**
 * The resilience console on `/resilience` behind the DEMO-ONLY shared login (`DemoConsoleGuard`):
 * a real service guards it with its own operator authentication.
 */
function consoleModule(options: SampleAppOptions): DynamicModule[] {
  const login = options.console ?? DEFAULT_CONSOLE_LOGIN;
  if (login === false) return [];
  return [ResilienceConsoleModule.register({ path: CONSOLE_PATH, guard: new DemoConsoleGuard(login) })];
}

/**
 * Where the idempotency records live. Keys are replayed for 24 h (the default) either way: the
 * database table is purged every 10 minutes, Redis expires each record by itself.
 */
function idempotencyOptions(options: SampleAppOptions, dataSource: DataSource): IdempotencyModuleOptions {
  if (options.redisUrl) {
    return { store: new RedisIdempotencyStore({ url: options.redisUrl, keyPrefix: options.redisKeyPrefix ?? 'sample-app:idempotency:' }) };
  }
  return { store: new TypeOrmIdempotencyStore(dataSource), purgeInterval: 600_000 };
}
