import 'reflect-metadata';
import { Controller, Get } from '@nestjs/common';
import { Redis } from 'ioredis';
import { CircuitBreaker, ResilienceModule, Retryable } from 'nest-resilience';
import { HttpClients, ResilientHttpModule } from 'nest-resilience/http';
import { RedisPolicyState } from 'nest-resilience/redis';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';

@Controller('shared')
class SharedBreakerController {
  @Get()
  @CircuitBreaker({ shared: true, key: () => 'per-call' })
  get() {
    return 'ok';
  }
}

@Controller('budget')
class SharedBudgetController {
  @Get()
  @Retryable({ budget: { shared: true } })
  get() {
    return 'ok';
  }
}

describe('shared state asked for without a backend', () => {
  it('a decorated route (even with a per-call key) refuses to start, naming the route and the fix', async () => {
    await expect(createApp('express', { imports: [ResilienceModule.forRoot()], controllers: [SharedBreakerController] })).rejects.toThrow(
      "GET SharedBreakerController.get sets circuitBreaker.shared: true, but no shared state backend is configured. Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove circuitBreaker.shared.",
    );
    await expect(createApp('express', { imports: [ResilienceModule.forRoot()], controllers: [SharedBudgetController] })).rejects.toThrow(
      'GET SharedBudgetController.get sets retry.budget.shared: true, but no shared state backend is configured.',
    );
  });

  it('a named policy or the module defaults refuse to start too', async () => {
    await expect(
      createApp('express', { imports: [ResilienceModule.forRoot({ policies: { payments: { circuitBreaker: { shared: true } } } })], controllers: [] }),
    ).rejects.toThrow('The named policy "payments" sets circuitBreaker.shared: true, but no shared state backend is configured.');
    await expect(
      createApp('express', { imports: [ResilienceModule.forRoot({ retry: { budget: { shared: true } } })], controllers: [] }),
    ).rejects.toThrow('ResilienceModule.forRoot() defaults sets retry.budget.shared: true');
  });

  it('a sharedState that is not a backend is refused, naming what to pass', async () => {
    await expect(
      createApp('express', { imports: [ResilienceModule.forRoot({ sharedState: {} as never })], controllers: [] }),
    ).rejects.toThrow("ResilienceModule option sharedState lacks the SharedPolicyState method(s) circuitBreaker, retryBudget, ping. Pass a SharedPolicyState such as new RedisPolicyState({ client }) from 'nest-resilience/redis'.");
  });

  it('an HTTP client refuses to start, naming the client and the fix', async () => {
    const withClient = (options: object) =>
      createApp('express', {
        imports: [ResilienceModule.forRoot(), ResilientHttpModule.register({ clients: { partner: { baseUrl: 'http://127.0.0.1:1', ...options } } })],
      });
    await expect(withClient({ circuitBreaker: { shared: true } })).rejects.toThrow(
      "The HTTP client \"partner\" sets circuitBreaker.shared: true, but no shared state backend is configured. Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove circuitBreaker.shared.",
    );
    await expect(withClient({ retry: { budget: { shared: true } } })).rejects.toThrow(
      'The HTTP client "partner" sets retry.budget.shared: true, but no shared state backend is configured.',
    );
  });
});

describe('shared state asked for by an HTTP client, with a backend', () => {
  // never connected: starting the app must not need the backend (the first call's breaker subscribes)
  const client = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  afterAll(() => client.disconnect());

  it.each([
    ['its own breaker', {}, { circuitBreaker: { shared: true } }],
    ['its own retry budget', {}, { retry: { budget: { shared: true } } }],
    ['a named policy', { policies: { partner: { circuitBreaker: { shared: true } } } }, { policy: 'partner' }],
    ['the module defaults', { circuitBreaker: { shared: true } }, {}],
  ])('starts when shared state is asked for by %s', async (_name, rootOptions, clientOptions) => {
    const app = await createApp('express', {
      imports: [
        ResilienceModule.forRoot({ ...rootOptions, sharedState: new RedisPolicyState({ client }) }),
        ResilientHttpModule.register({ clients: { partner: { baseUrl: 'http://127.0.0.1:1', ...clientOptions } } }),
      ],
    });
    try {
      expect(app.get(HttpClients).get('partner')?.name).toBe('partner');
    } finally {
      await app.close();
    }
  });
});
