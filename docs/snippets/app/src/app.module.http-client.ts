import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { ResilientHttpModule } from 'nest-resilience/http';
import { RedisPolicyState } from 'nest-resilience/redis';
import { redis } from './redis.client.js';

@Module({
  imports: [
    ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client: redis }) }),
    ResilientHttpModule.register({
      clients: {
        // every instance's failures feed one breaker, and their retries one budget (key http:rates@<origin>)
        rates: { baseUrl: process.env.RATES_URL ?? 'http://rates.internal', circuitBreaker: { shared: true }, retry: { budget: { shared: true } } },
      },
    }),
  ],
})
export class AppModule {}
