import { Injectable } from '@nestjs/common';
import { ResilienceService } from 'nest-resilience';

@Injectable()
export class ChaosDrills {
  // #region drill
  constructor(private readonly resilience: ResilienceService) {}

  slowDownPayments() {
    const chaos = this.resilience.chaos(); // ChaosControl; throws if chaos is not enabled
    chaos.inject({ id: 'payments-503', target: { route: 'POST /payments' }, fault: { kind: 'http', status: 503, headers: { 'retry-after': '2' } }, rate: 0.2 });
    // … later
    chaos.switch('payments-503', false); // or chaos.remove('payments-503'), chaos.clear()
  }
  // #endregion drill
}
