import { Injectable } from '@nestjs/common';
import { currentIdempotencyContext, resilientFetch } from 'nest-resilience';

@Injectable()
export class ChargesService {
  /** Called from an @Idempotent() route: a re-run of the request sends the provider the same key. */
  async charge(amount: number, currency: string): Promise<{ id: string }> {
    const idempotencyKey = currentIdempotencyContext()?.downstreamKey('charge') ?? crypto.randomUUID();
    const response = await resilientFetch('https://payments.example/charges', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify({ amount, currency }),
    });
    return (await response.json()) as { id: string };
  }
}
