import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { hostRequiredProblem } from './problems.js';

/**
 * HTTP/1.1 requires a `Host` header (RFC 9112 §3.2): a request without one is refused 400
 * problem+json. Node's own check is switched off (`leaveHostCheckToTheApp`) because it answers a
 * bare 400.
 */
@Injectable()
export class HostHeaderMiddleware implements NestMiddleware {
  use(req: IncomingMessage, _res: unknown, next: () => void): void {
    if (req.httpVersion === '1.1' && !req.headers.host) throw hostRequiredProblem();
    next();
  }
}
