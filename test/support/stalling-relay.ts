// A TCP relay on loopback in front of a real server that can make new connections stall (the
// handshake completes, then nothing is ever answered: what a client sees while an overloaded
// PostgreSQL has not got round to a new connection yet) or reset them at once, and counts them.
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the relay does with the next connection. */
export type RelayMode = 'forward' | 'stall' | 'reset';

/** A relay started by {@link startStallingRelay}. */
export interface StallingRelay {
  /** 127.0.0.1 port to connect to instead of the server's. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** What every new connection gets from now on (connections already open keep theirs). */
  mode: RelayMode;
  /** The next `count` connections stall, then the relay forwards again. */
  stallNext(count: number): void;
  close(): Promise<void>;
}

/** Starts a relay to `host:port` on a free loopback port; it forwards until told otherwise. */
export async function startStallingRelay(host: string, port: number): Promise<StallingRelay> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let stallsLeft = 0;
  let mode: RelayMode = 'forward';
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server: Server = createServer((client) => {
    connections++;
    track(client);
    const now: RelayMode = stallsLeft > 0 ? 'stall' : mode;
    if (stallsLeft > 0) stallsLeft--;
    if (now === 'reset') return void client.resetAndDestroy();
    // stalled: held open, read and never answered, until the client gives up
    if (now === 'stall') return void client.resume();
    const upstream = connect({ host, port });
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return connections;
    },
    get mode() {
      return mode;
    },
    set mode(next: RelayMode) {
      mode = next;
    },
    stallNext(count: number) {
      stallsLeft = count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
