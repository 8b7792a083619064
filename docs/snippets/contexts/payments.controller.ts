import { Controller, Injectable } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { CircuitBreaker, Idempotent, Retryable, Timeout } from 'nest-resilience';

export interface ChargeRequest {
  readonly paymentId: string;
  readonly amount: number;
}

export interface PaymentSettled {
  readonly eventId: string;
  readonly paymentId: string;
}

@Injectable()
export class PaymentsService {
  async charge(charge: ChargeRequest) {
    return { paymentId: charge.paymentId, status: 'charged' };
  }
}

@Injectable()
export class LedgerService {
  async record(event: PaymentSettled) {
    return { recorded: event.eventId };
  }
}

// #region controller
@Controller()
export class PaymentsController {
  constructor(
    private readonly payments: PaymentsService,
    private readonly ledger: LedgerService,
  ) {}

  @MessagePattern('payment.charge')
  @Idempotent({ key: (charge: ChargeRequest) => charge.paymentId })
  @Timeout(2_000)
  @Retryable({ maxAttempts: 3 })
  @CircuitBreaker()
  charge(@Payload() charge: ChargeRequest) {
    return this.payments.charge(charge);
  }

  @EventPattern('payment.settled')
  @Idempotent({ key: (event: PaymentSettled) => event.eventId })
  settled(@Payload() event: PaymentSettled) {
    return this.ledger.record(event);
  }
}
// #endregion controller
