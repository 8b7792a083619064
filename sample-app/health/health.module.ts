import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ResilienceHealthModule } from 'nest-resilience/health';
import { HealthController } from './health.controller.js';

/** Readiness and liveness probes (terminus + the library's indicators). */
@Module({
  imports: [TerminusModule, ResilienceHealthModule],
  controllers: [HealthController],
})
export class HealthModule {}
