import { Controller, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ResilienceModule, ResilienceService, Retryable } from 'nest-resilience';
import type { FakeClock } from 'nest-resilience/testing';

@Controller('payments')
export class PaymentsController {
  @Post()
  @Retryable({ maxAttempts: 3 })
  pay() {
    return { status: 'accepted' };
  }
}

/** The module of a test whose every `POST /payments` attempt fails with an injected fault. */
export async function paymentsUnderChaos(clock: FakeClock) {
  // #region test
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot({ clock, chaos: { enabled: true, seed: 1 } })],
    controllers: [PaymentsController],
  }).compile();
  moduleRef.get(ResilienceService).chaos().inject({ target: { route: 'POST /payments' }, fault: { kind: 'exception' }, rate: 1 });
  // every attempt now fails with InjectedFaultError: assert your fallback's answer
  // #endregion test
  return moduleRef;
}
