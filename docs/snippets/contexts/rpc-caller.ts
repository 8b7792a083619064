import type { ClientProxy } from '@nestjs/microservices';
import type { RpcProblem } from 'nest-resilience';
import { setTimeout as sleep } from 'node:timers/promises';
import { firstValueFrom } from 'rxjs';
import type { ChargeRequest } from './payments.controller.js';

/** Charges once; when the service's breaker is open, waits as long as it asks before the caller tries again. */
export async function chargeOnce(client: ClientProxy, charge: ChargeRequest): Promise<void> {
  // #region call
  try {
    await firstValueFrom(client.send('payment.charge', charge));
  } catch (error) {
    // error is the RpcException's error object: an RpcProblem
    // { status: 503, code: 'circuit_open', title: 'Dependency unavailable',
    //   detail: 'A dependency is failing, so the request was refused without calling it. Try again later.',
    //   message: '…same as detail…', retryAfterMs: 4210, type: 'https://nest-resilience.dev/problems/circuit_open' }
    const problem = error as RpcProblem;
    if (problem.code === 'circuit_open') await sleep(problem.retryAfterMs);
  }
  // #endregion call
}

/** Sends the request id and the caller's remaining time budget with every message of `client`. */
export function propagateDeadline(client: ClientProxy, requestId: string, remainingMs: number): void {
  // #region metadata
  client.setOnDispatchHook((packet) => {
    packet.metadata = { 'x-request-id': requestId, 'x-request-timeout-ms': String(remainingMs) };
  });
  // #endregion metadata
}
