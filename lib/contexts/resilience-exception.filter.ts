import { Catch, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { throwError } from 'rxjs';
import { ContextAdapters } from './context-adapters.js';
import { ResilienceError } from '../core/errors.js';
import { UpstreamError } from '../core/upstream-http.error.js';
import { applyProblemHeaders, isProblemDetailsException } from '../http/problem-details.js';
import { ResilienceErrorMapper } from '../http/resilience-error.mapper.js';

/**
 * Answers the library's errors that reach Nest outside a decorated handler (an undecorated route
 * or message handler calling a decorated service method whose circuit is open, say) through the
 * {@link ResilienceErrorMapper} and the context's rendering, like decorated handlers do: problem+json
 * on HTTP, an `RpcException` carrying the problem for a microservice caller, a `GraphQLError` with
the problem's extensions for a resolver (Nest applies no global filter to gateways: there, a
decorator on the handler renders them). It only catches the library's own error
 * classes, and only runs when one is thrown: it costs nothing on the success path, and every other
 * error goes to your filters or Nest's as before. `ResilienceModule` registers it globally (`APP_FILTER`);
 * a filter of yours bound to a controller or route, or registered globally before the module, takes
 * precedence.
 * @internal
 */
@Catch(ResilienceError, UpstreamError)
export class ResilienceExceptionFilter extends BaseExceptionFilter {
  constructor(
    private readonly mapper: ResilienceErrorMapper,
    private readonly contexts: ContextAdapters,
  ) {
    super();
  }

  override catch(exception: unknown, host: ArgumentsHost): unknown {
    const type = host.getType<string>();
    // a microservice caller gets the problem as an RpcException's error object (what Nest's own
    // RPC filter sends on the wire); GraphQL and gateways get the error re-thrown, as Nest's default does
    if (type === 'rpc') {
      const rpc = this.contexts.rpc;
      const answer = rpc.prepared ? rpc.renderError(this.mapper.map(exception)) : exception;
      return throwError(() => (rpc.prepared && isRpcException(answer) ? answer.getError() : answer));
    }
    if (type === 'graphql') {
      // thrown: graphql-js puts it in errors[] with the field's path, the other fields' data kept
      const graphql = this.contexts.graphql;
      throw graphql.prepared ? graphql.renderError(this.mapper.map(exception)) : exception;
    }
    if (type !== 'http') throw exception;
    const mapped = this.mapper.map(exception);
    if (isProblemDetailsException(mapped)) applyProblemHeaders(host.switchToHttp().getResponse(), mapped);
    super.catch(mapped, host);
    return undefined;
  }
}

function isRpcException(error: unknown): error is { getError(): unknown } {
  return typeof (error as { getError?: unknown } | null)?.getError === 'function';
}
