/** A throwaway nats-server (JetStream on) started by {@link startNats}. */
export interface ThrowawayNats {
  readonly port: number;
  readonly dir: string;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** Starts the server again after `halt()` or `kill()`, on the same port, with its JetStream store (streams and unacknowledged messages survive). */
  start(): Promise<void>;
  /** Stops the server (SIGTERM), to simulate an outage. */
  halt(): Promise<void>;
  /** Kills the server (SIGKILL). */
  kill(): Promise<void>;
  /** Stops the server and deletes its directory. */
  stop(): Promise<void>;
}

/** Path of `nats-server`, or undefined when it is not installed. */
export function findNatsServer(): string | undefined;
/** Starts a fresh server with JetStream on a free loopback port (default) in a temp dir. */
export function startNats(options?: { bin?: string; port?: number }): Promise<ThrowawayNats>;
