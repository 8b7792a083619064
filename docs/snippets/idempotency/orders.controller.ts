import { Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { Idempotent } from 'nest-resilience';
import { AccountGuard, type AuthenticatedRequest } from './account.guard.js';

@Controller('orders')
@UseGuards(AccountGuard) // guards run first: a refused request never claims its key
export class OrdersController {
  @Post()
  @HttpCode(202) // the replay answers the same status
  @Idempotent({
    scope: (request: AuthenticatedRequest) => request.account.id, // keys are per account: two accounts may send the same key
    ttl: 24 * 60 * 60 * 1000, // a completed response is replayed for 24 h
  })
  create(@Body() order: { sku: string; quantity: number }) {
    return { orderId: crypto.randomUUID(), ...order };
  }
}
