import { Inject, Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable, type Subscriber, type TeardownLogic } from 'rxjs';
import { runWithRequestInfo } from '../context/resilience-context.js';
import { Cancellation } from '../core/cancellation.js';
import { OperationAbortedError } from '../core/errors.js';
import {
  applyProblemHeaders,
  isProblemDetailsException,
  toHttpError,
} from '../http/problem-details.js';
import { onClientDisconnect, rawResponseOf, requestInfoSource } from '../http/request-info.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import type { ResolvedTargetPolicy } from '../resilience-options.resolver.js';
import { ResiliencePipelines, runObservable } from '../resilience-pipelines.js';
import { runRouteAttempts } from './route-attempts.js';

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
 * `ResilienceModule` binds it globally (one `APP_INTERCEPTOR` runs it inside the
 * `IdempotencyInterceptor`) unless `interceptors.mount` is false; then bind it yourself with
 * `@UseInterceptors(IdempotencyInterceptor, ResilienceInterceptor)` (or this one alone).
 * Non-HTTP contexts pass through untouched.
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
    const http = context.switchToHttp();
    if (!target) return this.passThrough(http.getRequest(), http.getResponse(), next);
    return new Observable<unknown>((subscriber) => this.run(target, context, http.getRequest(), http.getResponse(), next, subscriber));
  }

  /**
   * An undecorated route: the handler is subscribed inside the request scope, so work it starts
   * (even a job that outlives the request) and decorated provider methods it calls tag their events
   * with this request's id (computed only if something asks for it). Library errors are mapped.
   */
  private passThrough(request: unknown, response: unknown, next: CallHandler): Observable<unknown> {
    const source = requestInfoSource(request);
    return new Observable<unknown>((subscriber) =>
      runWithRequestInfo(source, () =>
        next.handle().subscribe({
          next: (value) => subscriber.next(value),
          error: (error: unknown) => subscriber.error(this.toHttpError(error, response, 503)),
          complete: () => subscriber.complete(),
        }),
      ),
    );
  }

  private run(
    target: ResolvedTargetPolicy,
    context: ExecutionContext,
    request: unknown,
    response: unknown,
    next: CallHandler,
    subscriber: Subscriber<unknown>,
  ): TeardownLogic {
    const rawResponse = rawResponseOf(response);
    const args = context.getArgs();
    const key = this.pipelines.keyFor(target, args, request);
    const pipeline = this.pipelines.pipelineFor(target, key);
    // a token, not an AbortController: the signal is only created if the handler asks for it
    const client = new Cancellation();
    const stopWatching = onClientDisconnect(response, () =>
      client.abort(new OperationAbortedError('the client closed the connection')),
    );
    const store = { policy: key, clock: this.pipelines.env.clock, owner: this.pipelines, request: requestInfoSource(request) };
    const mapError = (error: unknown) => this.toHttpError(error, response, target.bulkheadRejectStatus);
    const isCommitted = () => rawResponse.headersSent === true;
    const lean = pipeline.lean;
    // timeouts and retries only, and no attempt spans to open: the callback path, far cheaper per request
    if (lean !== undefined && !this.pipelines.tracesAttempts()) {
      return runRouteAttempts(
        lean,
        this.pipelines.env,
        this.pipelines.deadlines,
        () => next.handle(),
        { cancellation: client, isCommitted, store, mapError, release: stopWatching },
        subscriber,
      );
    }
    const teardown = runObservable(
      pipeline,
      () => next.handle(),
      { cancellation: client, isCommitted, args, store, outerContext: true, wrapAttempt: this.pipelines.wrapAttempt, mapError },
      subscriber,
    );
    return () => {
      teardown();
      stopWatching();
    };
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

