import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ResilienceModule } from 'nest-resilience';

@Module({
  imports: [
    ConfigModule.forRoot(),
    ResilienceModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        enabled: config.get('RESILIENCE_ENABLED') !== 'false', // kill switch: false runs every route undecorated
        timeout: { status: 504, total: Number(config.get('REQUEST_DEADLINE_MS') ?? 30_000) },
        policies: {
          // one named policy per dependency, applied with @UsePolicy('payments') or @Retryable('payments')
          payments: {
            retry: { maxAttempts: 2 },
            timeout: { total: 10_000, attempt: 4_000 },
            circuitBreaker: { strategy: { type: 'consecutive', threshold: 5 } },
          },
          llm: { timeout: { total: 60_000, attempt: 30_000 }, bulkhead: { maxConcurrent: 20, maxQueue: 50 } },
        },
      }),
    }),
  ],
})
export class AppModule {}
