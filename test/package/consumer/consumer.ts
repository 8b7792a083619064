// A TypeScript consumer of the published typings (dist/*.d.ts), compiled by entry-points.spec.ts
// with skipLibCheck off: a type that `stripInternal` removed but a public signature still names
// fails here, not in a user's build.
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { CircuitBreaker, currentSignal, Fallback, Idempotent, ResilienceErrorMapper, ResilienceModule, ResilienceService, Retryable, Timeout } from 'nest-resilience';
import { createPipeline, IdempotencyCore, InMemoryIdempotencyStore, systemClock } from 'nest-resilience/core';
import { IdempotencyStoreHealthIndicator, RedisHealthIndicator } from 'nest-resilience/health';
import { HttpClient, InjectHttpClient, ResilientHttpModule, type HttpResponse } from 'nest-resilience/http';
import { ResilienceSwagger } from 'nest-resilience/swagger';
import { FakeClock } from 'nest-resilience/testing';
import { TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from 'nest-resilience/redis';
import { ResilienceConsoleModule, type ConsoleState } from 'nest-resilience/console';

class PartnerErrorMapper extends ResilienceErrorMapper {}

@Controller()
class ReportsController {
  @Get()
  @Timeout(5_000)
  @Retryable()
  @CircuitBreaker()
  @Fallback([])
  list() {
    return currentSignal()?.aborted ?? false;
  }
}

@Module({ imports: [ResilienceModule.forRoot({ errorMapper: PartnerErrorMapper })], controllers: [ReportsController] })
export class AppModule {}

export const core = new IdempotencyCore({ store: new InMemoryIdempotencyStore({ clock: new FakeClock() }), clock: systemClock });
export const used = [createPipeline, Idempotent, ResilienceService, TypeOrmIdempotencyStore, IdempotencyStoreHealthIndicator, ResilienceSwagger, RedisHealthIndicator];
export const redisOptions: RedisIdempotencyStoreOptions = { url: 'redis://localhost:6379', keyPrefix: 'idempotency:reports:' };
export const redisStore = (): RedisIdempotencyStore => new RedisIdempotencyStore(redisOptions);
export const consoleModule = ResilienceConsoleModule.register({ allowUnauthenticated: true });
export const breakerStates = (state: ConsoleState): string[] => state.breakers.map((breaker) => breaker.state);

class ModelCaller {
  constructor(@InjectHttpClient('model') private readonly model: HttpClient) {}

  generate(topic: string): Promise<HttpResponse<unknown>> {
    return this.model.post('/generate', { topic });
  }
}

@Module({ imports: [ResilientHttpModule.register({ clients: { model: { baseUrl: 'http://model.internal' } } })], providers: [ModelCaller] })
export class ClientModule {}
