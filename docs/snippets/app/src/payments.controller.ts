import { randomUUID } from 'node:crypto';
import { Body, Controller, Post } from '@nestjs/common';
import { Idempotent, Retryable, Timeout } from 'nest-resilience';

interface CreatePayment {
  amount: number;
  currency: string;
}

@Controller('payments')
export class PaymentsController {
  @Post()
  @Idempotent() // one execution per Idempotency-Key; a retry of the same request gets the stored answer
  @Retryable() // transient failures (network errors, 5xx, 429) are retried, bounded and budgeted
  @Timeout({ total: 5_000, attempt: 2_000 }) // the answer goes out by 5 s; each attempt gets 2 s
  create(@Body() payment: CreatePayment) {
    return { id: randomUUID(), status: 'accepted', ...payment };
  }
}
