// The app of the timeout-heap scenario: routes whose `@Timeout()` fires on every request, in the
// ways handlers meet a timeout in production.
import { Controller, Get, Module, type DynamicModule } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { AttemptSignal, ResilienceModule, Retryable, Timeout } from 'nest-resilience';

/** The attempt timeout of every route, ms: short, so a minute holds many thousands of timeouts. */
export const TIMEOUT_MS = 40;

/** The routes, requested in turn by the load. */
export const TIMEOUT_ROUTES = ['/timeouts/cancellable', '/timeouts/late', '/timeouts/hung', '/timeouts/retried'] as const;

@Controller('timeouts')
class TimeoutsController {
  /** Follows its signal: the sleep is cancelled at the timeout. */
  @Get('cancellable')
  @Timeout(TIMEOUT_MS)
  async cancellable(@AttemptSignal() signal: AbortSignal): Promise<unknown> {
    await delay(60_000, undefined, { signal });
    return { done: true };
  }

  /** Ignores its signal and finishes after the answer went out. */
  @Get('late')
  @Timeout(TIMEOUT_MS)
  async late(): Promise<unknown> {
    await delay(TIMEOUT_MS * 5);
    return { done: true };
  }

  /** Never settles (a call without a timeout of its own to a dependency that never answers). */
  @Get('hung')
  @Timeout(TIMEOUT_MS)
  hung(): Promise<unknown> {
    return new Promise(() => undefined);
  }

  /** Attempt timeouts retried until the deadline (or the retry budget) ends the call. */
  @Get('retried')
  @Timeout({ total: TIMEOUT_MS * 4, attempt: TIMEOUT_MS })
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 5 } })
  async retried(@AttemptSignal() signal: AbortSignal): Promise<unknown> {
    await delay(60_000, undefined, { signal });
    return { done: true };
  }
}

@Module({})
class TimeoutHeapModule {}

/** `ResilienceModule` with its defaults and the routes above. */
export function timeoutHeapModule(): DynamicModule {
  return { module: TimeoutHeapModule, imports: [ResilienceModule.forRoot()], controllers: [TimeoutsController] };
}
