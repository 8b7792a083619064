import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A real HTTP server on 127.0.0.1 standing in for a dependency. */
export interface LoopbackServer {
  readonly url: string;
  /** Requests received so far. */
  readonly calls: () => number;
  /** Requests received per path. */
  readonly callsTo: (path: string) => number;
  close(): Promise<void>;
}

/**
 * Starts a dependency whose answers are scripted per path: `script(path, n)` gets the path and the
 * 1-based number of the call to it and returns a status (and optional body).
 */
export async function startDependency(
  script: (path: string, call: number) => { status: number; body?: unknown; headers?: Record<string, string> },
): Promise<LoopbackServer> {
  const counts = new Map<string, number>();
  let total = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const call = (counts.get(path) ?? 0) + 1;
    counts.set(path, call);
    total++;
    const { status, body, headers } = script(path, call);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body ?? { path, call }));
  });
  return listen(server, {
    calls: () => total,
    callsTo: (path: string) => counts.get(path) ?? 0,
  });
}

/** A dependency that accepts requests and never answers; records what it saw. */
export interface HangingServer extends LoopbackServer {
  /** Resolves when the socket of the `n`-th request (1-based) closed. */
  readonly socketClosed: (n: number) => Promise<void>;
  /** Headers of every request received. */
  readonly headers: IncomingMessage['headers'][];
}

export async function startHangingServer(): Promise<HangingServer> {
  const closed: Array<{ promise: Promise<void>; resolve: () => void }> = [];
  const slot = (index: number) => {
    while (closed.length <= index) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      closed.push({ promise, resolve });
    }
    return closed[index]!;
  };
  const headers: IncomingMessage['headers'][] = [];
  const server = createServer((req) => {
    const index = headers.length;
    headers.push(req.headers);
    const socket: Socket = req.socket;
    socket.once('close', () => slot(index).resolve());
    // never answer
  });
  const base = await listen(server, { calls: () => headers.length, callsTo: () => headers.length });
  return { ...base, headers, socketClosed: (n) => slot(n - 1).promise };
}

async function listen<T extends Partial<LoopbackServer>>(server: Server, extra: T): Promise<LoopbackServer & T> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    ...extra,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  } as LoopbackServer & T;
}
