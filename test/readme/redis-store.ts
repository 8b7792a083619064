// The README's Redis store setup (section "Redis store"): readme.spec.ts checks that the README
// shows the region below verbatim, and the type check compiles it.
import { Module } from '@nestjs/common';
// #region readme
import { Redis } from 'ioredis';
import { ResilienceModule } from 'nest-resilience';
import { RedisIdempotencyStore } from 'nest-resilience/redis';

// The client your app already has. enableOfflineQueue: false makes a command fail at once while
// Redis is unreachable instead of queueing (the store also never queues after the first connect);
// autoResendUnfulfilledCommands: false keeps a claim the store already answered 503 from being
// resent after a reconnect, where it would hold the key (409) until its lease ends.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });

@Module({
  imports: [
    ResilienceModule.forRoot({
      idempotency: {
        // keys: 'idempotency:orders:<sha256>'; each command bounded by commandTimeoutMs (default 1000)
        store: new RedisIdempotencyStore({ client: redis, keyPrefix: 'idempotency:orders:' }),
      },
    }),
  ],
})
export class AppModule {}
// #endregion
