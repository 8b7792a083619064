import { Module } from '@nestjs/common';
import { InMemoryIdempotencyStore, ResilienceModule } from 'nest-resilience';
import { PaymentsController } from './payments.controller.js';

@Module({
  imports: [
    ResilienceModule.forRoot({
      idempotency: {
        // the defaults are 50_000 records and 64 MiB of stored data: size them for the container
        store: new InMemoryIdempotencyStore({ maxRecords: 20_000, maxBytes: 32 * 1024 * 1024 }),
        maxResponseBytes: 256 * 1024, // larger responses are delivered once and kept without their body
      },
    }),
  ],
  controllers: [PaymentsController],
})
export class AppModule {}
