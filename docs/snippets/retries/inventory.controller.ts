import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { AttemptSignal, Retryable, assertOk } from 'nest-resilience';

const STOCK_URL = 'http://stock.internal/items';

@Controller('inventory')
export class InventoryController {
  @Get(':sku')
  @Retryable({ maxAttempts: 4, backoff: { type: 'exponential', base: 200 } })
  async stock(@Param('sku') sku: string, @AttemptSignal() signal: AbortSignal) {
    // assertOk throws an UpstreamHttpError for a non-2xx answer: a 5xx, 408 or 429 is retried
    // (after its Retry-After), any other 4xx is not
    const response = await assertOk(await fetch(`${STOCK_URL}/${encodeURIComponent(sku)}`, { signal }));
    return response.json();
  }

  @Put(':sku')
  @Retryable() // PUT is idempotent by definition: retried like GET
  async set(@Param('sku') sku: string, @Body() body: { quantity: number }, @AttemptSignal() signal: AbortSignal) {
    await assertOk(await fetch(`${STOCK_URL}/${encodeURIComponent(sku)}`, { method: 'PUT', body: JSON.stringify(body), signal }));
    return { sku, ...body };
  }
}
