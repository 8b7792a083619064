import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ResilienceEvents } from 'nest-resilience';

/** Your own consumer of the events: here a counter of retries per policy (Prometheus, StatsD…). */
@Injectable()
export class RetryMetrics implements OnModuleInit {
  readonly retries = new Map<string, number>();

  constructor(private readonly events: ResilienceEvents) {}

  onModuleInit(): void {
    this.events.subscribe((event) => {
      if (event.event === 'retry') this.retries.set(event.policy, (this.retries.get(event.policy) ?? 0) + 1);
    });
  }
}
