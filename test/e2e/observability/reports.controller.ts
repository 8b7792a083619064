import { Body, Controller, Get, Headers, Post } from '@nestjs/common';
import { CircuitBreaker, Idempotent, Retryable, UpstreamHttpError } from 'nest-resilience';

/** Calls seen per request id, so each request fails exactly twice before it succeeds. */
const calls = new Map<string, number>();

/** The routes the observability specs drive: a retried one, an idempotent one, a guarded one. */
@Controller('reports')
export class ReportsController {
  private created = 0;

  @Get('flaky')
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  flaky(@Headers('x-request-id') requestId: string) {
    const call = (calls.get(requestId) ?? 0) + 1;
    calls.set(requestId, call);
    if (call <= 2) throw new UpstreamHttpError(503);
    return { call };
  }

  @Post()
  @Idempotent()
  create(@Body() body: { title: string }) {
    this.created++;
    return { id: this.created, title: body.title };
  }

  @Get('model')
  @CircuitBreaker({ key: 'telemetry-model' })
  model() {
    return { ok: true };
  }
}
