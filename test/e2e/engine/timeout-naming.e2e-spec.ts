import { Controller, Get, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { describe, expect, it } from 'vitest';
import { ResilienceModule, Retryable, Timeout } from 'nest-resilience';

/** Keeps the warnings Nest's Logger forwards to the app's logger. */
class WarningCapture implements LoggerService {
  readonly warnings: string[] = [];
  log() {}
  error() {}
  debug() {}
  verbose() {}
  warn(message: unknown) {
    this.warnings.push(String(message));
  }
}

@Controller('quotes')
class QuotesController {
  /** Reads as "2 s for the request", but bounds each attempt: the request may take the 30 s total. */
  @Get('ambiguous')
  @Retryable()
  @Timeout(2_000)
  ambiguous() {
    return 'ok';
  }

  @Get('per-attempt')
  @Retryable()
  @Timeout({ attempt: 2_000 })
  perAttempt() {
    return 'ok';
  }

  @Get('whole-call')
  @Retryable()
  @Timeout({ total: 2_000 })
  wholeCall() {
    return 'ok';
  }

  /** Without retries a bare number is the deadline of the call: nothing to misread. */
  @Get('single')
  @Timeout(2_000)
  single() {
    return 'ok';
  }
}

describe('@Timeout(ms) on a retried route', () => {
  it('warns once at start-up, naming the route, what the number means there and both explicit forms', async () => {
    const capture = new WarningCapture();
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [QuotesController] }).compile();
    const app = moduleRef.createNestApplication({ logger: capture });
    await app.init();
    await app.close();
    const timeoutWarnings = capture.warnings.filter((message) => message.includes('@Timeout('));
    expect(timeoutWarnings, capture.warnings.join('\n')).toHaveLength(1);
    expect(timeoutWarnings[0]).toContain('QuotesController.ambiguous');
    expect(timeoutWarnings[0]).toContain('@Timeout({ attempt: 2000 })');
    expect(timeoutWarnings[0]).toContain('@Timeout({ total: 2000 })');
    expect(timeoutWarnings[0]).toContain('30000 ms');
  });
});
