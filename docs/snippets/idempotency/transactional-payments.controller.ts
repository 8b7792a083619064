import { Body, Controller, Post } from '@nestjs/common';
import { Idempotent, IdempotencyTransaction } from 'nest-resilience';
import type { EntityManager } from 'typeorm';
import { Payment } from './payment.entity.js';

@Controller('payments')
export class TransactionalPaymentsController {
  @Post()
  @Idempotent({ transactional: true }) // needs TypeOrmIdempotencyStore
  create(@Body() body: { amount: number; currency: string }, @IdempotencyTransaction() manager: EntityManager) {
    // this row and the idempotency record commit together, or not at all
    return manager.save(Payment, manager.create(Payment, body));
  }
}
