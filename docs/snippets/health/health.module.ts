import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ResilienceHealthModule } from 'nest-resilience/health';
import { HealthController } from './health.controller.js';

@Module({
  // ResilienceHealthModule provides the indicators; ResilienceModule.forRoot() is imported by AppModule
  imports: [TerminusModule, ResilienceHealthModule],
  controllers: [HealthController],
})
export class HealthModule {}
