// The app of the retry-budget scenario: one `@Retryable()` route in front of a dependency. Run in
// a child process by the chaos suite (chaos/budget/server.ts) and in-process by the fast subset
// in `npm test` (test/e2e/chaos/retry-budget.e2e-spec.ts).
import { Controller, Get, Inject, Module, type DynamicModule } from '@nestjs/common';
import { assertOk, ResilienceModule, Retryable, withDeadline, type RetryBudgetOptions } from 'nest-resilience';

/** Injection token of the dependency's URL. */
const UPSTREAM_URL = Symbol('UPSTREAM_URL');

/** `GET /budget`: calls the dependency with the library's default retry policy (3 attempts, budgeted). */
@Controller('budget')
class BudgetController {
  constructor(@Inject(UPSTREAM_URL) private readonly upstreamUrl: string) {}

  @Get()
  @Retryable()
  async call(): Promise<unknown> {
    const response = await fetch(this.upstreamUrl, withDeadline());
    await assertOk(response);
    return response.json();
  }
}

@Module({})
class RetryBudgetModule {}

/**
 * The module: `ResilienceModule` with its defaults, except `budget` when given (the fast subset
 * shortens the window to run in seconds).
 */
export function retryBudgetModule(upstreamUrl: string, budget?: RetryBudgetOptions): DynamicModule {
  return {
    module: RetryBudgetModule,
    imports: [ResilienceModule.forRoot(budget ? { retry: { budget } } : {})],
    controllers: [BudgetController],
    providers: [{ provide: UPSTREAM_URL, useValue: upstreamUrl }],
  };
}
