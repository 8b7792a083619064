import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { CircuitBreakerService } from 'nest-resilience';

/** An operator's view of the breakers (put it behind your admin guard). */
@Controller('admin/breakers')
export class BreakersController {
  constructor(private readonly breakers: CircuitBreakerService) {}

  @Get()
  list() {
    return this.breakers.list(); // key, state, failure rate, calls judged, when an open one half-opens
  }

  @Post(':key/isolate')
  @HttpCode(204)
  isolate(@Param('key') key: string) {
    this.breakers.isolate(key); // hold it open: calls fail fast until reset
  }

  @Post(':key/reset')
  @HttpCode(204)
  reset(@Param('key') key: string) {
    this.breakers.reset(key); // closed, counters cleared
  }
}
