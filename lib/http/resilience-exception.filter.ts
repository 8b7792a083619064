import { Catch, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { throwError } from 'rxjs';
import { ResilienceError } from '../core/errors.js';
import { UpstreamError } from '../core/upstream-http.error.js';
import { applyProblemHeaders, isProblemDetailsException } from './problem-details.js';
import { ResilienceErrorMapper } from './resilience-error.mapper.js';

/**
 * Answers the library's errors that reach Nest outside a decorated route (an undecorated route
 * calling a decorated service method whose circuit is open, say) through the
 * {@link ResilienceErrorMapper}, like decorated routes do. It only catches the library's own error
 * classes, and only runs when one is thrown: it costs nothing on the success path, and every other
 * error goes to your filters or Nest's as before. `ResilienceModule` registers it globally (`APP_FILTER`);
 * a filter of yours bound to a controller or route, or registered globally before the module, takes
 * precedence.
 * @internal
 */
@Catch(ResilienceError, UpstreamError)
export class ResilienceExceptionFilter extends BaseExceptionFilter {
  constructor(private readonly mapper: ResilienceErrorMapper) {
    super();
  }

  override catch(exception: unknown, host: ArgumentsHost): unknown {
    const type = host.getType<string>();
    // other transports keep their own handling: a microservice gets the error back as its
    // transport expects it, GraphQL and gateways get it re-thrown (what Nest's default does there)
    if (type === 'rpc') return throwError(() => exception);
    if (type !== 'http') throw exception;
    const mapped = this.mapper.map(exception);
    if (isProblemDetailsException(mapped)) applyProblemHeaders(host.switchToHttp().getResponse(), mapped);
    super.catch(mapped, host);
    return undefined;
  }
}
