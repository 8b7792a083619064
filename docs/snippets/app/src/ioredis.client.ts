import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';

const logger = new Logger('Redis');

export const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  // while Redis is unreachable a command fails at once (the route answers 503) instead of queueing
  enableOfflineQueue: false,
  // a claim already answered 503 is not resent after the reconnect (it would hold its key until the lease ends)
  autoResendUnfulfilledCommands: false,
});
// without a listener ioredis prints every reconnection failure as an "Unhandled error event"
redis.on('error', (error: Error) => logger.warn(`Redis connection: ${error.message}`));
