import { Inject, Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable, catchError, defer, finalize, throwError } from 'rxjs';
import { runWithRequestInfo, type ResilienceContextStore } from '../context/resilience-context.js';
import { OperationAbortedError } from '../core/errors.js';
import type { ExecutionContext as PolicyContext } from '../core/policy.js';
import {
  applyProblemHeaders,
  isProblemDetailsException,
  toHttpError,
} from '../http/problem-details.js';
import { httpRequestInfo, onClientDisconnect, rawResponseOf } from '../http/request-info.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import type { ResolvedTargetPolicy } from '../resilience-options.resolver.js';
import { executeObservable, ResiliencePipelines } from '../resilience-pipelines.js';

/**
 * Runs every decorated HTTP route through its resilience pipeline, built from all of its
 * decorators in the canonical order (fallback → bulkhead → total timeout → retry → circuit
 * breaker → attempt timeout → handler), whatever order they are written in.
 *
 * - Each attempt re-runs the interceptors registered after this one, the pipes and the handler
 *   (never the guards), inside an AsyncLocalStorage context that carries the attempt's signal.
 * - The client disconnecting aborts the signal and stops further retries.
 * - Nothing is retried once the response started (headers sent or a value emitted).
 * - Library errors become RFC 9457 problem+json answers (`timeout`, `circuit_open`,
 *   `bulkhead_rejected`, `retries_exhausted`, `aborted`) with `Retry-After` when it applies; any
 *   other error passes through unchanged. This mapping also applies to undecorated routes, so a
 *   decorated service method's open circuit reaches the client as a 503.
 *
 * `ResilienceModule` binds it globally (`APP_INTERCEPTOR`) unless `interceptors.mount` is false;
 * then bind it yourself with `@UseInterceptors(ResilienceInterceptor)`. Non-HTTP contexts pass
 * through untouched.
 * @publicApi
 */
@Injectable()
export class ResilienceInterceptor implements NestInterceptor {
  constructor(
    private readonly pipelines: ResiliencePipelines,
    @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: ResolvedResilienceOptions,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.options.enabled || context.getType() !== 'http') return next.handle();
    const target = this.pipelines.targetFor(context.getClass(), context.getHandler());
    const response: unknown = context.switchToHttp().getResponse();
    if (!target) {
      const { requestId, route } = httpRequestInfo(context.switchToHttp().getRequest());
      // Subscribed inside the request scope: work the handler starts (even a job that outlives the
      // request) and decorated provider methods it calls tag their events with this request's id.
      const handled = new Observable<unknown>((subscriber) =>
        runWithRequestInfo({ requestId, route }, () => next.handle().subscribe(subscriber)),
      );
      return handled.pipe(catchError((error: unknown) => throwError(() => this.toHttpError(error, response, 503))));
    }
    return defer(() => this.run(target, context, next, response));
  }

  private run(target: ResolvedTargetPolicy, context: ExecutionContext, next: CallHandler, response: unknown): Observable<unknown> {
    const request: unknown = context.switchToHttp().getRequest();
    const info = httpRequestInfo(request);
    const rawResponse = rawResponseOf(response);
    const args = context.getArgs();
    const key = this.pipelines.keyFor(target, { args, request });
    const pipeline = this.pipelines.pipelineFor(target, key);
    const client = new AbortController();
    const stopWatching = onClientDisconnect(response, () =>
      client.abort(new OperationAbortedError('the client closed the connection')),
    );
    const { clock } = this.pipelines.env;
    const base = { policy: key, requestId: info.requestId, route: info.route, clock, owner: this.pipelines };
    const outerContext: ResilienceContextStore = { ...base, signal: client.signal, deadline: Infinity, attempt: 0 };
    const contextFor = (attempt: PolicyContext): ResilienceContextStore => ({
      ...base,
      signal: attempt.signal,
      deadline: attempt.deadline,
      attempt: attempt.attempt,
      cleanups: new Set(),
    });
    return executeObservable(pipeline, () => next.handle(), {
      signal: client.signal,
      isCommitted: () => rawResponse.headersSent === true,
      args,
      contextFor,
      outerContext,
      wrapAttempt: this.pipelines.wrapAttempt,
      mapError: (error) => this.toHttpError(error, response, target.bulkheadRejectStatus),
    }).pipe(finalize(stopWatching));
  }

  /** Maps a library error to its problem+json exception and sets its headers on the response. */
  private toHttpError(error: unknown, response: unknown, bulkheadRejectStatus: number): unknown {
    const mapped = toHttpError(error, {
      timeoutStatus: this.options.timeout.status,
      bulkheadRejectStatus,
      typeBase: this.options.problemTypeBase,
    });
    if (isProblemDetailsException(mapped)) applyProblemHeaders(response, mapped);
    return mapped;
  }
}
