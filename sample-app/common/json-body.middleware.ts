import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { unsupportedCharsetProblem, unsupportedMediaTypeProblem } from './problems.js';

/** `application/json` and `application/*+json`, with any parameters. */
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;
/** A `charset` parameter, quoted or not. */
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;

/**
 * Refuses a request body that is not UTF-8 JSON with 415 problem+json, on both platforms alike: Express
 * would otherwise leave such a body unparsed (and answer a confusing validation error) while
 * Fastify parses `text/plain`, ignores the charset and refuses other types itself.
 */
@Injectable()
export class JsonBodyMiddleware implements NestMiddleware {
  use(req: IncomingMessage, _res: unknown, next: () => void): void {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return next();
    const contentType = req.headers['content-type'] ?? '';
    if (!JSON_MEDIA_TYPE.test(contentType)) throw unsupportedMediaTypeProblem();
    const charset = CHARSET.exec(contentType)?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw unsupportedCharsetProblem();
    next();
  }
}
