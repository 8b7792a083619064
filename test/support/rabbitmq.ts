import { randomBytes } from 'node:crypto';
import { startRabbitMq, type ThrowawayRabbitMq } from '../../scripts/rabbitmq.mjs';

/** The RabbitMQ node `npm test` started, or the one AMQP_URL names; undefined when there is none. */
export const amqpUrl = process.env.AMQP_URL;

/** Whether RabbitMQ tests can run; they are skipped (loudly, by `npm test`) otherwise. */
export const hasRabbitMq = Boolean(amqpUrl);

/** A queue or exchange name of the test's own, so test files sharing the one broker never meet. */
export function rabbitMqName(name = 'test'): string {
  return `${name}.${randomBytes(6).toString('hex')}`;
}

/**
 * A RabbitMQ node owned by one test file, for tests that stop or kill the broker (they must never
 * stop the shared one); it takes seconds to boot, so start one only when a test needs it.
 */
export function startOwnRabbitMq(): Promise<ThrowawayRabbitMq> {
  return startRabbitMq(process.env.RABBITMQ_SERVER ? { bin: process.env.RABBITMQ_SERVER } : {});
}
