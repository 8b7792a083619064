import { Controller, Get, Param } from '@nestjs/common';
import { AttemptSignal, UsePolicy, assertOk } from 'nest-resilience';

const RATES_URL = process.env.RATES_URL ?? 'http://rates.internal';

@Controller('rates')
export class RatesController {
  @Get(':currency')
  @UsePolicy('exchange-rates') // timeout, retry and the shared breaker of that named policy
  async rate(@Param('currency') currency: string, @AttemptSignal() signal: AbortSignal) {
    const response = await assertOk(await fetch(`${RATES_URL}/rates/${encodeURIComponent(currency)}`, { signal }));
    return (await response.json()) as { currency: string; rate: number };
  }
}
