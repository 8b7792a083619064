import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { RedisIdempotencyStore, RedisPolicyState } from 'nest-resilience/redis';
import { PaymentsController } from './payments.controller.js';
import { RatesController } from './rates.controller.js';
import { redis } from './redis.client.js';

@Module({
  imports: [
    ResilienceModule.forRoot({
      // the same client serves the idempotency store and the shared policy state
      idempotency: { store: new RedisIdempotencyStore({ client: redis, keyPrefix: 'idempotency:payments:' }) },
      sharedState: new RedisPolicyState({ client: redis }),
      policies: {
        // used by RatesController: one breaker and one retry budget for every instance
        'exchange-rates': {
          timeout: { total: 3_000, attempt: 1_000 },
          retry: { maxAttempts: 2, budget: { shared: true } },
          circuitBreaker: { strategy: { type: 'consecutive', threshold: 5 }, shared: true },
        },
      },
    }),
  ],
  controllers: [PaymentsController, RatesController],
})
export class AppModule {}
