import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { IdempotencyStore } from '../core/idempotency/idempotency-store.interface.js';
import { describeFailure, elapsedSince, raceWithTimeout } from './health-timeout.js';

/**
 * Options of {@link IdempotencyStoreHealthIndicator.isHealthy}.
 * @publicApi
 */
export interface IdempotencyStoreHealthOptions {
  /** How long the store's ping may take before the check is down, in ms. @default 1000 */
  timeout?: number;
}

/**
 * Checks the idempotency store with a real round trip (`store.ping()`, a `SELECT 1` for the
 * TypeORM store) raced against a timeout. Put it in the **readiness** probe: while the store is
 * down, `@Idempotent()` routes answer 503 (fail closed), so the instance should stop receiving
 * traffic; it should not be in the liveness probe, because restarting the app does not repair the
 * database.
 * @example
 * @Get('ready') @HealthCheck()
 * ready() { return this.health.check([() => this.store.isHealthy('idempotency_store', { timeout: 500 })]); }
 * @publicApi
 */
@Injectable()
export class IdempotencyStoreHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    @Inject(IdempotencyStore) private readonly store: IdempotencyStore,
  ) {}

  /**
   * `up` with `latencyMs` when the store answered in time; `down` with `message` (the error or the
   * timeout) and `latencyMs` otherwise.
   * @param key Name of the indicator in the health report. @default 'idempotency_store'
   */
  async isHealthy<const Key extends string = 'idempotency_store'>(
    key: Key = 'idempotency_store' as Key,
    { timeout = 1000 }: IdempotencyStoreHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const start = performance.now();
    try {
      await raceWithTimeout(timeout, () => this.store.ping());
    } catch (error) {
      return check.down({
        message: `The idempotency store did not answer its ping: ${describeFailure(error)}.`,
        latencyMs: elapsedSince(start),
      });
    }
    return check.up({ latencyMs: elapsedSince(start) });
  }
}
