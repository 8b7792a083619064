// A TCP relay on loopback in front of a real server that can make new connections stall (the
// handshake completes, then nothing is ever answered: what a client sees while an overloaded
// PostgreSQL has not got round to a new connection yet), reset them at once, or end them the way a
// stopping PostgreSQL does, and counts them.
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * What the relay does with the next connection. `terminate-when-ready`: the handshake is forwarded
 * up to the server's first ReadyForQuery, which reaches the client in one network read with a
 * FATAL 57P01 (what PostgreSQL sends every backend when it is stopped), then the connection ends.
 */
export type RelayMode = 'forward' | 'stall' | 'reset' | 'terminate-when-ready';

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
    if (now === 'terminate-when-ready') terminateWhenReady(upstream, client);
    else upstream.pipe(client);
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

/** PostgreSQL's ErrorResponse for a backend terminated by a fast shutdown (`pg_ctl stop -m fast`). */
function adminShutdownError(): Buffer {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0', 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

/**
 * Forwards the server's messages (type byte, then a length that counts itself) until the first
 * ReadyForQuery ('Z'), then writes what is left of it and the FATAL in one write and ends both sides.
 */
function terminateWhenReady(upstream: Socket, client: Socket): void {
  let pending = Buffer.alloc(0);
  upstream.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    let offset = 0;
    while (pending.length - offset >= 5) {
      const type = String.fromCharCode(pending[offset]!);
      const end = offset + 1 + pending.readInt32BE(offset + 1);
      if (end > pending.length) break;
      offset = end;
      if (type === 'Z') {
        upstream.removeAllListeners('data');
        upstream.destroy();
        client.end(Buffer.concat([pending.subarray(0, offset), adminShutdownError()]));
        return;
      }
    }
    client.write(pending.subarray(0, offset));
    pending = pending.subarray(offset);
  });
}
