import { Body, Controller, Post } from '@nestjs/common';
import { AttemptSignal, Idempotent, UsePolicy } from 'nest-resilience';

@Controller('summaries')
export class SummariesController {
  @Post()
  @Idempotent()
  @UsePolicy('llm') // timeout and bulkhead of the named policy
  async summarize(@Body() body: { text: string }, @AttemptSignal() signal: AbortSignal) {
    const response = await fetch('http://llm.internal/summaries', { method: 'POST', body: JSON.stringify(body), signal });
    return response.json();
  }
}
