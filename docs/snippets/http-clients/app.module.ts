import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { ResilientHttpModule } from 'nest-resilience/http';
import { ModelClient } from './model.client.js';

@Module({
  imports: [
    ResilienceModule.forRoot(),
    ResilientHttpModule.register({
      clients: {
        model: {
          baseUrl: process.env.MODEL_URL ?? 'http://model.internal',
          timeout: { total: 20_000, attempt: 8_000 },
          rateLimit: { requestsPerSecond: 20 }, // a token bucket per origin, retries included
          ping: { path: '/healthz' }, // what HttpClientHealthIndicator probes
        },
      },
    }),
  ],
  providers: [ModelClient],
})
export class AppModule {}
