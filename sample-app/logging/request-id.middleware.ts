import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

/** A client-supplied request id is reused only when it is short and printable (no log injection). */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request id: the client's `X-Request-Id` when usable, else a new UUID. */
export function requestIdFor(req: IncomingMessage): string {
  const header = req.headers['x-request-id'];
  const incoming = Array.isArray(header) ? header[0] : header;
  return incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * Sets `req.id` (what pino-http logs and the library reads) and echoes it in the `X-Request-Id`
 * response header. It runs before pino-http because Fastify already puts its own counter
 * (`req-1`, `req-2`, …) on `req.id`, which pino-http would otherwise keep.
 */
@Injectable()
export class RequestIdMiddleware implements NestMiddleware {
  use(req: IncomingMessage & { id?: unknown }, res: ServerResponse, next: () => void): void {
    const id = requestIdFor(req);
    req.id = id;
    res.setHeader('X-Request-Id', id);
    next();
  }
}
