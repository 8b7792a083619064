import { Injectable } from '@nestjs/common';
import { CircuitBreaker, Retryable, assertOk, currentSignal } from 'nest-resilience';

@Injectable()
export class RecommenderClient {
  @CircuitBreaker({
    key: 'recommender', // the breaker's name (default: RecommenderClient.recommend)
    strategy: { type: 'count', size: 50, failureRatio: 0.5, minimumCalls: 20 }, // opens at 50 % failures of the last 50 calls
    breakDuration: 10_000, // then fails fast for 10 s, then admits one probe
  })
  @Retryable({ maxAttempts: 2 }) // retry runs outside the breaker: each attempt is one sample
  async recommend(userId: string): Promise<string[]> {
    const response = await assertOk(await fetch(`http://recommender.internal/users/${userId}`, { signal: currentSignal() }));
    return (await response.json()) as string[];
  }
}
