import { Controller, Get, Query } from '@nestjs/common';
import { AttemptTimeoutError, CircuitBreaker, DeadlineExceededError, Fallback, RetriesExhaustedError, Retryable, Timeout } from 'nest-resilience';
import { MODEL_SERVICE_POLICY } from '../resilience/policies.js';
import { PreviewQueryDto } from './create-report.dto.js';
import { ModelClient } from './model-client.js';

/** What `GET /preview` answers when the model is too slow: a placeholder, flagged as such. */
export interface PreviewAnswer {
  topic: string;
  text: string | null;
  /** Set when the model did not answer in time: the text is a placeholder. */
  degraded?: string;
}

/** The model took too long: the deadline passed, or every attempt timed out. */
function modelTooSlow(error: unknown): boolean {
  return (
    error instanceof AttemptTimeoutError ||
    error instanceof DeadlineExceededError ||
    (error instanceof RetriesExhaustedError && error.cause instanceof AttemptTimeoutError)
  );
}

/**
 * `GET /preview?topic=…`: a synchronous one-off generation, free of charge. It shares the
 * `model-service` breaker with the background generation: when the model is down the breaker is
 * open and this route answers 503 (with `Retry-After`) at once instead of waiting for a timeout.
 * When the model is only slow (every attempt times out), the fallback answers 200 with no text and
 * `degraded` saying why, instead of a 503.
 */
@Controller('preview')
export class PreviewController {
  constructor(private readonly model: ModelClient) {}

  @Get()
  @Timeout({ total: 3000, attempt: 1000 })
  @Retryable({ maxAttempts: 2 })
  @CircuitBreaker(MODEL_SERVICE_POLICY)
  @Fallback((_error: unknown, query: PreviewQueryDto): PreviewAnswer => ({ topic: query.topic, text: null, degraded: 'the model is too slow right now' }), { on: modelTooSlow })
  async preview(@Query() query: PreviewQueryDto): Promise<PreviewAnswer> {
    return { topic: query.topic, text: await this.model.generate(query.topic) };
  }
}
