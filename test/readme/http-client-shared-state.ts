// The README's shared-state HTTP client (section "Outgoing HTTP clients"): readme.spec.ts checks
// that the README shows the region below verbatim, and the type check compiles it.
import { Module } from '@nestjs/common';
// #region readme
import { Redis } from 'ioredis';
import { ResilienceModule } from 'nest-resilience';
import { ResilientHttpModule } from 'nest-resilience/http';
import { RedisPolicyState } from 'nest-resilience/redis';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableOfflineQueue: false });

@Module({
  imports: [
    ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }),
    ResilientHttpModule.register({
      clients: {
        // every instance's failures feed one breaker, and their retries one budget (key http:payments@<origin>)
        payments: { baseUrl: 'https://payments.internal', circuitBreaker: { shared: true }, retry: { budget: { shared: true } } },
      },
    }),
  ],
})
export class AppModule {}
// #endregion
