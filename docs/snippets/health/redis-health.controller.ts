import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { IdempotencyStore } from 'nest-resilience';
import { RedisHealthIndicator } from 'nest-resilience/health';
import { RedisIdempotencyStore } from 'nest-resilience/redis';

@Controller('health')
export class RedisHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisHealthIndicator,
    @Inject(IdempotencyStore) private readonly store: RedisIdempotencyStore,
  ) {}

  /** Readiness of an instance whose idempotency records live in Redis. */
  @Get('ready')
  @HealthCheck()
  ready() {
    // a real PING on the store's client; for ioredis the details carry its connection status
    return this.health.check([() => this.redis.isHealthy('redis', { client: this.store.client, timeout: 500 })]);
  }
}
