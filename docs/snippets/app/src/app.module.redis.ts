import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { PaymentsController } from './payments.controller.js';
import { redis } from './redis.client.js';

@Module({
  imports: [
    ResilienceModule.forRoot({
      // keys 'idempotency:payments:<sha256>'; each store operation bounded by commandTimeoutMs (default 1000)
      idempotency: { store: new RedisIdempotencyStore({ client: redis, keyPrefix: 'idempotency:payments:' }) },
    }),
  ],
  controllers: [PaymentsController],
})
export class AppModule {}
