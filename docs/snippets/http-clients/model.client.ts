import { Injectable } from '@nestjs/common';
import { InjectHttpClient, type HttpClient } from 'nest-resilience/http';
import { z } from 'zod';

const Generated = z.object({ text: z.string() });

@Injectable()
export class ModelClient {
  constructor(@InjectHttpClient('model') private readonly model: HttpClient) {}

  async generate(topic: string): Promise<string> {
    // retried on network errors, 408, 429 (after its Retry-After) and 5xx; a POST keeps one Idempotency-Key across retries
    const { data } = await this.model.post('/generate', { topic }, { schema: Generated, callName: 'generate' }); // data: { text: string }
    return data.text;
  }
}
