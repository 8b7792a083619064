import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { PaymentsController } from './payments.controller.js';

@Module({
  // global; adds nothing to routes without its decorators. Keys live in memory here (one instance):
  // docs/stores.md moves them to PostgreSQL or Redis.
  imports: [ResilienceModule.forRoot()],
  controllers: [PaymentsController],
})
export class AppModule {}
