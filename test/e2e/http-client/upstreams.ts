import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a loopback upstream received. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** What a scripted upstream answers: a status, a JSON body, headers; `hang` never answers. */
export interface ScriptedAnswer {
  readonly status?: number;
  readonly body?: unknown;
  readonly raw?: string;
  readonly headers?: Record<string, string>;
  readonly hang?: boolean;
  /** Answer after this many ms (real timers: the server is a real process-local server). */
  readonly delayMs?: number;
}

/** A real HTTP server on 127.0.0.1:0 standing in for a dependency. */
export interface Upstream {
  readonly url: string;
  readonly received: ReceivedRequest[];
  /** Resolves when the socket of the `n`-th request (1-based) closed. */
  socketClosed(n: number): Promise<void>;
  /** Resolves once `n` requests arrived. */
  arrived(n: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts an upstream whose answer to the n-th request (1-based) is `script(request, n)`. */
export async function startUpstream(script: (request: ReceivedRequest, n: number) => ScriptedAnswer): Promise<Upstream> {
  const received: ReceivedRequest[] = [];
  const closed = new Map<number, { promise: Promise<void>; resolve: () => void }>();
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const slot = (n: number) => {
    let entry = closed.get(n);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      closed.set(n, entry);
    }
    return entry;
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: ReceivedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(request);
      const n = received.length;
      req.socket.once('close', () => slot(n).resolve());
      for (const waiter of waiters.filter((w) => w.n <= n)) waiter.resolve();
      const answer = script(request, n);
      if (answer.hang) return;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
        res.end(answer.raw ?? JSON.stringify(answer.body ?? { n }));
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    socketClosed: (n) => slot(n).promise,
    arrived: (n) =>
      received.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
