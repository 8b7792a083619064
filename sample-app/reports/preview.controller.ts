import { Controller, Get, Query } from '@nestjs/common';
import { CircuitBreaker, Retryable, Timeout } from 'nest-resilience';
import { MODEL_SERVICE_POLICY } from '../resilience/policies.js';
import { PreviewQueryDto } from './create-report.dto.js';
import { ModelClient } from './model-client.js';

/**
 * `GET /preview?topic=…`: a synchronous one-off generation, free of charge. It shares the
 * `model-service` breaker with the background generation: when the model is down the breaker is
 * open and this route answers 503 (with `Retry-After`) at once instead of waiting for a timeout.
 */
@Controller('preview')
export class PreviewController {
  constructor(private readonly model: ModelClient) {}

  @Get()
  @Timeout({ total: 3000, attempt: 1000 })
  @Retryable({ maxAttempts: 2 })
  @CircuitBreaker(MODEL_SERVICE_POLICY)
  async preview(@Query() query: PreviewQueryDto): Promise<{ topic: string; text: string }> {
    return { topic: query.topic, text: await this.model.generate(query.topic) };
  }
}
