import { Logger } from '@nestjs/common';
import { createClient } from 'redis';

const logger = new Logger('Redis');

// disableOfflineQueue: while Redis is unreachable a command fails at once (the route answers 503)
// instead of waiting in the client's queue
export const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', disableOfflineQueue: true });
// your own log of connection errors (the store also listens, so an outage answers 503 and never ends the process)
redis.on('error', (error: Error) => logger.warn(`Redis connection: ${error.message}`));
await redis.connect();
