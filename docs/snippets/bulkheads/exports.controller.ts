import { Controller, Get, Param } from '@nestjs/common';
import { Bulkhead, Timeout } from 'nest-resilience';

@Controller('exports')
export class ExportsController {
  @Get(':id')
  // at most 4 exports run at once, 10 more wait (at most 2 s, and never past the deadline); the rest get 429
  @Bulkhead({ maxConcurrent: 4, maxQueue: 10, queueTimeout: 2_000, rejectStatus: 429 })
  @Timeout({ total: 15_000 })
  async export(@Param('id') id: string) {
    const response = await fetch(`http://reports.internal/exports/${encodeURIComponent(id)}`);
    return response.json();
  }
}
