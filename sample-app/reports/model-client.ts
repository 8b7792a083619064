import { Inject, Injectable } from '@nestjs/common';
import { assertOk, withDeadline } from 'nest-resilience';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';

/**
 * The HTTP client of the model service. It has no policy of its own: callers decorate the
 * methods that use it, and `withDeadline()` hands this call the caller's attempt signal, remaining
 * budget and request id, so a timed-out attempt really closes the connection.
 */
@Injectable()
export class ModelClient {
  private readonly baseUrl: string;

  constructor(@Inject(SAMPLE_APP_OPTIONS) options: SampleAppOptions) {
    this.baseUrl = options.modelServiceUrl.replace(/\/+$/, '');
  }

  /** `POST /generate { topic }` → the generated text. Non-2xx answers throw `UpstreamHttpError`. */
  async generate(topic: string): Promise<string> {
    const response = await fetch(
      `${this.baseUrl}/generate`,
      withDeadline({
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic }),
      }),
    );
    await assertOk(response);
    const body = (await response.json()) as { text?: unknown };
    if (typeof body.text !== 'string') throw new Error('The model service answered 200 without a "text" string.');
    return body.text;
  }
}
