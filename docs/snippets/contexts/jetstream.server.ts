import type { CustomTransportStrategy } from '@nestjs/microservices';

/**
 * The shape of the JetStream transport the contexts guide starts from (the tests' transport,
 * test/fixtures/consumers/jetstream.server.ts, is a complete one of ~90 lines): one durable pull
 * consumer that hands each message to Nest with its headers and acknowledges it after the handler.
 */
export declare class JetStreamServer implements CustomTransportStrategy {
  constructor(options: { servers: string; stream: string; subjects: string[]; durable: string; ackWaitMs: number });
  listen(callback: () => void): void;
  close(): void;
}
