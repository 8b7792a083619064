import { Controller, Get, Module, Param } from '@nestjs/common';
import { AttemptSignal, Fallback, ResilienceModule, Timeout, assertOk } from 'nest-resilience';
import { RedisPolicyState } from 'nest-resilience/redis';
import { redis } from '../app/src/redis.client.js';

const RATES_URL = process.env.RATES_URL ?? 'http://rates.internal';

@Controller('rates')
export class RatesController {
  // any instance serves the youngest rate the fleet fetched in the last hour while the provider fails
  @Get(':currency')
  @Timeout({ total: 2_000 })
  @Fallback({ lastGood: { ttl: 3_600_000, maxEntries: 200, shared: true } })
  async rate(@Param('currency') currency: string, @AttemptSignal() signal: AbortSignal) {
    const response = await assertOk(await fetch(`${RATES_URL}/rates/${encodeURIComponent(currency)}`, { signal }));
    return (await response.json()) as { currency: string; rate: number };
  }
}

@Module({
  imports: [ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client: redis }) })],
  controllers: [RatesController],
})
export class RatesModule {}
