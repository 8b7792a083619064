import { Injectable } from '@nestjs/common';
import { InjectHttpClient, type HttpClient } from 'nest-resilience/http';
import { z } from 'zod';

/** Name of the model service's `ResilientHttpModule` client. */
export const MODEL_HTTP_CLIENT = 'model';

/**
 * What `POST /generate` must answer. A model that answers anything else (a renamed field, a null
 * text) breaks the contract: the call fails with `UpstreamContractError`, which the error mapper
 * answers 502 `upstream_contract` naming the failing path, and is not retried.
 */
export const GeneratedText = z.object({ text: z.string().min(1), model: z.string().optional() });

/**
 * The model service, through its resilient HTTP client (`reports.module.ts` registers it): an
 * undici keep-alive pool, the response validated by {@link GeneratedText}, a 429/503 `Retry-After`
 * pausing every model call until then (a call whose deadline ends sooner fails at once), and the
 * caller's attempt signal, remaining budget and request id sent along. Retries, timeouts and the
 * breaker stay with the callers' decorators (`@UsePolicy('model-service')`, `GET /preview`), which
 * share one breaker; the client only follows their deadline.
 */
@Injectable()
export class ModelClient {
  constructor(@InjectHttpClient(MODEL_HTTP_CLIENT) private readonly model: HttpClient) {}

  /** `POST /generate { topic }` → the generated text. Failures are `UpstreamError`s. */
  async generate(topic: string): Promise<string> {
    const { data } = await this.model.post('/generate', { topic }, { schema: GeneratedText, idempotencyKey: false });
    return data.text;
  }
}
