import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const pinoHttp = {
  genReqId: (req: IncomingMessage) => req.headers['x-request-id'] ?? randomUUID(),
  // the key is a credential: pino-http logs it in the request headers and, since every answer
  // echoes it, in the response headers too
  redact: ['req.headers["idempotency-key"]', 'res.headers["idempotency-key"]'],
};
