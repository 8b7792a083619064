// The app the redis-outage scenario (chaos/redis/outage.ts) starts as separate Node processes,
// compiled by `npm run build:sample` into build/chaos/redis/. It imports the built package like a
// user's app (`nest-resilience`, `nest-resilience/redis`) and follows the README's Redis setup: one
// client of the app's, made to fail fast while disconnected, serves both the idempotency store and
// the shared policy state.
//
// Environment: REDIS_URL, KEY_PREFIX (prefix of the run's keys), PLATFORM (express | fastify),
// REDIS_CLIENT (ioredis | node-redis), COMMAND_TIMEOUT_MS (the store's), LEASE_MS (the idempotent
// route's), PORT (0 = any), INSTANCE.
// Stdout lines: `READY <port>`, `EXECUTED <key>` when the idempotent handler starts, and
// `EVENT <json>` for shared-state, breaker and idempotency store events.
import 'reflect-metadata';
import { BadGatewayException, Body, Controller, Get, Headers, Module, Post, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { CircuitBreaker, Idempotent, Resilience, ResilienceModule, Retryable } from 'nest-resilience';
import { RedisIdempotencyStore, RedisPolicyState, type NodeRedisClient } from 'nest-resilience/redis';
import { line, runFixture, serveFixture } from '../../test/fixtures/fixture-app.js';

const instance = process.env.INSTANCE ?? `pid-${process.pid}`;
const leaseMs = Number(process.env.LEASE_MS);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface CreateOrder {
  /** How long the handler works, ms: long ones are still running when Redis is killed. */
  readonly workMs: number;
}

@Controller()
class OutageController {
  @Post('orders')
  @Idempotent({ lease: leaseMs })
  async create(@Body() body: CreateOrder, @Headers('idempotency-key') key: string) {
    line(`EXECUTED ${key}`);
    await sleep(Number(body.workMs) || 0);
    return { key, instance };
  }

  /**
   * Shared breaker and shared retry budget. `?flaky=1` fails the first attempt, so the retry waits
   * for its permit from Redis: the one call on this route that awaits Redis (bounded by `maxWait`).
   * A consecutive threshold the alternating failures never reach keeps the breaker closed.
   */
  @Get('forecast')
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 20 }, shared: true })
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 }, budget: { ratio: 0.5, shared: true } })
  forecast(@Query('flaky') flaky?: string) {
    if (flaky === '1' && Resilience.current()?.attempt === 1) throw new BadGatewayException('the first attempt of a flaky call fails');
    return { instance };
  }
}

/** The app's client, of the library REDIS_CLIENT names, connected and failing fast while disconnected. */
async function connectedClient(): Promise<Redis | NodeRedisClient> {
  const url = process.env.REDIS_URL!;
  if (process.env.REDIS_CLIENT === 'node-redis') {
    const client = createClient({ url, disableOfflineQueue: true });
    // node-redis throws an 'error' without a listener: the app's own job, as with any client
    client.on('error', () => undefined);
    return client.connect();
  }
  const client = new Redis(url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
  client.on('error', () => undefined);
  await new Promise<void>((resolve) => client.once('ready', resolve));
  return client;
}

async function main(): Promise<void> {
  const client = await connectedClient();
  const prefix = process.env.KEY_PREFIX!;
  const commandTimeoutMs = Number(process.env.COMMAND_TIMEOUT_MS);

  @Module({
    imports: [
      ResilienceModule.forRoot({
        idempotency: { store: new RedisIdempotencyStore({ client, keyPrefix: `${prefix}idem:`, commandTimeoutMs }) },
        sharedState: new RedisPolicyState({ client, prefix: `${prefix}policy:` }),
      }),
    ],
    controllers: [OutageController],
  })
  class RedisOutageModule {}

  const app =
    process.env.PLATFORM === 'fastify'
      ? await NestFactory.create<NestFastifyApplication>(RedisOutageModule, new FastifyAdapter(), { logger: ['error'] })
      : await NestFactory.create(RedisOutageModule, { logger: ['error'] });
  await serveFixture(app, /^(shared_state_|breaker_|idempotency_store_error)/);
}

runFixture('redis-outage', main);
