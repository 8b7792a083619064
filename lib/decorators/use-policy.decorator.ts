import { recordAndBind } from '../engine/binding/bind.decorator.js';
import { USE_POLICY_METADATA } from '../resilience.constants.js';

/**
 * Applies a named policy of `forRoot({ policies })` (retry, timeout, circuit breaker, bulkhead and
 * fallback as configured there) to a route, a provider method or a whole class. The policy name is
 * also the key of its breaker, bulkhead and budget state, so every user of the policy shares it.
 * Other decorators on the same target override single parts. An unknown name stops start-up.
 * @example
 * ResilienceModule.forRoot({ policies: { payments: { retry: { maxAttempts: 2 }, timeout: { total: 4_000 } } } });
 * @UsePolicy('payments')
 * @Injectable()
 * export class PaymentsClient { ... }
 * @publicApi
 */
export function UsePolicy(name: string): MethodDecorator & ClassDecorator {
  return recordAndBind(USE_POLICY_METADATA, name);
}
