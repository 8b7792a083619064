// The overhead benchmarks' trivial GET /hello route, bare and with each decorator set: shared by
// the HTTP servers (server.ts) and the in-process engine harness (engine-calls.ts).
import { Controller, Get } from '@nestjs/common';
import { Retryable, Timeout } from 'nest-resilience';

/** The body every variant answers. */
export const PAYLOAD = { hello: 'world' };

/** GET /hello without a decorator. */
@Controller()
export class BareController {
  @Get('hello')
  hello() {
    return PAYLOAD;
  }
}

/** GET /hello under `@Timeout(5000)`. */
@Controller()
export class TimeoutController {
  @Get('hello')
  @Timeout(5000)
  hello() {
    return PAYLOAD;
  }
}

/** GET /hello under `@Retryable()`. */
@Controller()
export class RetryableController {
  @Get('hello')
  @Retryable()
  hello() {
    return PAYLOAD;
  }
}

/** GET /hello under `@Timeout(5000) @Retryable()`. */
@Controller()
export class BothController {
  @Get('hello')
  @Timeout(5000)
  @Retryable()
  hello() {
    return PAYLOAD;
  }
}
