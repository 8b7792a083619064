import { Injectable } from '@nestjs/common';
import { Idempotent } from 'nest-resilience';
import { idempotent, InMemoryIdempotencyStore } from 'nest-resilience/core';

/** A charge of one payment. */
export interface Charge {
  readonly paymentId: string;
  readonly amount: number;
}

// #region method
@Injectable()
export class PaymentsService {
  @Idempotent({ key: (charge: Charge) => charge.paymentId })
  async charge(charge: Charge) {
    return { paymentId: charge.paymentId, status: 'charged' };
  }
}
// #endregion method

/** Charges an order once, without Nest. */
export async function chargeTwice(charge: (order: Charge) => Promise<{ status: string }>, order: Charge) {
  const store = new InMemoryIdempotencyStore();
  // #region function
  const chargeOnce = idempotent(charge, { store, key: (order: Charge) => order.paymentId, lease: 30_000 });
  await chargeOnce(order); // runs charge
  await chargeOnce(order); // the stored result, charge not run
  // #endregion function
}
