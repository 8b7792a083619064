/** A throwaway RabbitMQ node started by {@link startRabbitMq}. */
export interface ThrowawayRabbitMq {
  readonly port: number;
  readonly dir: string;
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string;
  /** How long the first boot took, until a client could open an AMQP connection (ms). */
  readonly startMs: number;
  /** Starts the broker again after `halt()` or `kill()`, on the same port, with its data (durable queues and their messages survive); resolves to the boot time in ms. */
  start(): Promise<number | undefined>;
  /** Stops the broker (SIGTERM), to simulate an outage. */
  halt(): Promise<void>;
  /** Kills the broker (SIGKILL to the whole process group). */
  kill(): Promise<void>;
  /** Stops the broker and its port mapper and deletes its directory. */
  stop(): Promise<void>;
}

/** How long a boot may take before it counts as failed. */
export const RABBITMQ_START_TIMEOUT_MS: number;
/** Path of the broker's start script, or undefined when RabbitMQ is not installed. */
export function findRabbitMqServer(): string | undefined;
/** Starts a fresh broker on free loopback ports in a temp dir (its own node name, port mapper and data). */
export function startRabbitMq(options?: { bin?: string; port?: number; timeoutMs?: number }): Promise<ThrowawayRabbitMq>;
