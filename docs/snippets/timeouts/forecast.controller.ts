import { Controller, Get, Param } from '@nestjs/common';
import { AttemptSignal, Retryable, Timeout, assertOk } from 'nest-resilience';

@Controller('forecasts')
export class ForecastController {
  @Get(':city')
  @Retryable()
  // total: the whole request, retries and back-offs included; attempt: each try of the handler
  @Timeout({ total: 3_000, attempt: 1_000 })
  async forecast(@Param('city') city: string, @AttemptSignal() signal: AbortSignal) {
    // the signal aborts at the attempt's timeout: fetch stops, and the retry starts with a fresh signal
    const response = await assertOk(await fetch(`http://weather.internal/forecasts/${encodeURIComponent(city)}`, { signal }));
    return response.json();
  }
}
