import { Injectable } from '@nestjs/common';
import { CircuitBreaker, Retryable, Timeout, assertOk, currentSignal } from 'nest-resilience';

@Injectable()
export class ModelClient {
  // provider methods take the same decorators as routes; a decorated provider method must be
  // async (or declare a Promise or Observable return type)
  @Retryable({ maxAttempts: 3 })
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 5 } })
  @Timeout({ total: 20_000, attempt: 8_000 })
  async generate(topic: string): Promise<string> {
    // currentSignal(): the signal of the current attempt, aborted at its timeout
    const response = await assertOk(await fetch('http://model.internal/generate', { method: 'POST', body: JSON.stringify({ topic }), signal: currentSignal() }));
    const { text } = (await response.json()) as { text: string };
    return text;
  }
}
