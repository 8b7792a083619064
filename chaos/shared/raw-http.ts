// A raw HTTP/1.1 client over a TCP socket: it sends exactly the bytes it is given (lying
// Content-Length, control characters, non-UTF-8 bodies), which fetch and node:http refuse to send.
import { connect } from 'node:net';

/** One request, byte for byte. */
export interface RawRequest {
  readonly method: string;
  /** Request target, sent as is (may be invalid on purpose). */
  readonly target: string;
  /** Header lines in order (duplicates allowed); values are written as latin1 bytes. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /**
   * Bytes written only after the server answered (or `pauseMs` passed): the rest of a body whose
   * Content-Length was declared shorter than what the client sends.
   */
  readonly trailing?: Buffer;
  /** Close the sending side after the body (a client that declared more than it sent and gives up). */
  readonly halfClose?: boolean;
}

/** A response as received. Header names are lower-case; repeated headers are joined with ", ". */
export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** What came back on the socket. */
export type RawOutcome =
  | { readonly kind: 'response'; readonly response: RawResponse }
  /** The server closed the connection without a complete response. */
  | { readonly kind: 'closed'; readonly detail: string }
  /** Nothing complete arrived within the time limit. */
  | { readonly kind: 'timeout' };

/** Options of {@link sendRaw}. */
export interface SendOptions {
  /** Give up after this long. @default 10_000 */
  readonly timeoutMs?: number;
  /** How long to wait for an answer before writing `trailing` or half-closing. @default 300 */
  readonly pauseMs?: number;
}

/** Serialises the request line and headers (latin1, so every byte 0x00–0xFF goes out as is). */
export function requestHead(request: RawRequest): Buffer {
  const lines = [`${request.method} ${request.target} HTTP/1.1`, ...request.headers.map(([name, value]) => `${name}: ${value}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/**
 * Sends `request` to 127.0.0.1:`port` on a fresh connection and reads the first response.
 * The caller puts `Connection: close` in the headers if it wants the server to close after it.
 */
export function sendRaw(port: number, request: RawRequest, { timeoutMs = 10_000, pauseMs = 300 }: SendOptions = {}): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect({ port, host: '127.0.0.1' });
    const finish = (outcome: RawOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(pause);
      socket.destroy();
      resolve(outcome);
    };
    const tryParse = (ended: boolean) => {
      const parsed = parseResponse(Buffer.concat(chunks), request.method === 'HEAD', ended);
      if (parsed) finish({ kind: 'response', response: parsed });
      else if (ended) finish({ kind: 'closed', detail: chunks.length ? `incomplete response: ${Buffer.concat(chunks).toString('latin1', 0, 80)}` : 'closed without a byte' });
    };
    const deadline = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    let pause: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(Buffer.concat([requestHead(request), request.body]));
      if (request.trailing || request.halfClose) {
        pause = setTimeout(() => {
          if (settled || socket.destroyed) return;
          if (request.trailing) socket.write(request.trailing);
          if (request.halfClose) socket.end();
        }, pauseMs);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('close', () => tryParse(true));
    // ECONNRESET after a partial answer: whatever arrived is judged on 'close'.
    socket.on('error', () => undefined);
  });
}

/**
 * Parses the first response in `bytes`; `undefined` while it is incomplete. Handles
 * Content-Length, chunked transfer coding and bodies delimited by the connection closing.
 */
export function parseResponse(bytes: Buffer, headRequest: boolean, ended: boolean): RawResponse | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine, ...headerLines] = bytes.toString('latin1', 0, headEnd).split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine!);
  if (!match) return undefined;
  const status = Number(match[1]);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const rest = bytes.subarray(headEnd + 4);
  // An interim answer (100 Continue): the real response follows it.
  if (status >= 100 && status < 200) return parseResponse(rest, headRequest, ended);
  if (headRequest || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
  if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
    const body = dechunk(rest);
    return body ? { status, headers, body } : undefined;
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    return rest.length >= length ? { status, headers, body: rest.subarray(0, length) } : undefined;
  }
  return ended ? { status, headers, body: rest } : undefined;
}

/** Decodes a complete chunked body; `undefined` until the last chunk arrived. */
function dechunk(bytes: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', offset);
    if (lineEnd < 0) return undefined;
    const size = parseInt(bytes.toString('latin1', offset, lineEnd), 16);
    if (!Number.isFinite(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (bytes.length < start + size + 2) return undefined;
    parts.push(bytes.subarray(start, start + size));
    offset = start + size + 2;
  }
}
