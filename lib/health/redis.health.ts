import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { describeFailure, elapsedSince, raceWithTimeout } from './health-timeout.js';

/**
 * Options of {@link RedisHealthIndicator.isHealthy}.
 * @example
 * this.redis.isHealthy('redis', { client: store.client, timeout: 500 });
 * @publicApi
 */
export interface RedisHealthOptions {
  /**
   * The client to check: an ioredis `Redis` or `Cluster`, or a node-redis client (yours, or
   * `store.client` of a `RedisIdempotencyStore`). Typed by what the check uses, so
   * `nest-resilience/health` needs neither client's types.
   */
  client: {
    /** One PING round trip. */
    ping(): Promise<unknown>;
    /** ioredis' connection status (`ready`, `reconnecting`, `end`…); node-redis has none. */
    readonly status?: string;
  };
  /** How long PING may take before the check is down, in ms. @default 1000 */
  timeout?: number;
}

/**
 * Checks a Redis server with a real PING raced against a timeout (a connection that hangs or
 * queues commands offline cannot hang the probe). `up` with `latencyMs`; `down` with a
 * full-sentence `message`, `latencyMs` and the client's `connection` status (`reconnecting`,
 * `end`…). Put it in the **readiness** probe when `RedisIdempotencyStore` holds your idempotency
 * keys: while Redis is down those routes answer 503, and restarting the app would not help.
 * Exported from `nest-resilience/health` (it needs `@nestjs/terminus`, not ioredis) and provided by
 * `ResilienceHealthModule`.
 * @example
 * @Get('ready') @HealthCheck()
 * ready() { return this.health.check([() => this.redis.isHealthy('redis', { client: this.store.client, timeout: 500 })]); }
 * @publicApi
 */
@Injectable()
export class RedisHealthIndicator {
  constructor(private readonly healthIndicatorService: HealthIndicatorService) {}

  /**
   * PINGs `client`.
   * @param key Name of the indicator in the health report. @default 'redis'
   */
  async isHealthy<const Key extends string = 'redis'>(key: Key = 'redis' as Key, options: RedisHealthOptions): Promise<HealthIndicatorResult<Key>> {
    const { client, timeout = 1000 } = options;
    const check = this.healthIndicatorService.check(key);
    const start = performance.now();
    try {
      await raceWithTimeout(timeout, () => client.ping());
    } catch (error) {
      return check.down({
        message: `Redis did not answer PING: ${describeFailure(error)}.`,
        latencyMs: elapsedSince(start),
        ...(client.status === undefined ? {} : { connection: client.status }),
      });
    }
    return check.up({ latencyMs: elapsedSince(start) });
  }
}
