import { Injectable, Module } from '@nestjs/common';
import { RateLimit, ResilienceModule } from 'nest-resilience';
import { HttpClient, InjectHttpClient, ResilientHttpModule } from 'nest-resilience/http';
import { RedisPolicyState } from 'nest-resilience/redis';
import { redis } from '../app/src/redis.client.js';

@Injectable()
export class Embeddings {
  constructor(@InjectHttpClient('llm') private readonly llm: HttpClient) {}

  // a provider method under its own fleet-wide limit (in-process without `shared`)
  @RateLimit({ requestsPerSecond: 5, burst: 5, shared: true })
  async embed(text: string): Promise<unknown> {
    const { data } = await this.llm.post('/embeddings', { input: text });
    return data;
  }
}

@Module({
  imports: [
    ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client: redis }) }),
    ResilientHttpModule.register({
      clients: {
        llm: {
          baseUrl: 'https://api.llm.example',
          // 600 requests a minute for the whole fleet, 10 at once after a quiet period; during a
          // Redis outage each of our 3 instances keeps to a third of it
          rateLimit: { requestsPerMinute: 600, burst: 10, shared: true, fallback: { requestsPerMinute: 200, burst: 3 } },
        },
      },
    }),
  ],
  providers: [Embeddings],
})
export class LlmModule {}
