import 'reflect-metadata';
import { Controller, Get } from '@nestjs/common';
import { CircuitBreaker, ResilienceModule, Retryable } from 'nest-resilience';
import { describe, expect, it } from 'vitest';
import { createApp } from '../support/app.js';

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
});
