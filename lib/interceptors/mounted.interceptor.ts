import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { IdempotencyInterceptor } from '../idempotency/idempotency.interceptor.js';
import { ResilienceInterceptor } from './resilience.interceptor.js';

/**
 * The one interceptor `ResilienceModule` binds globally: {@link IdempotencyInterceptor} around
 * {@link ResilienceInterceptor}, so a replay runs nothing else and retries and timeouts run inside
 * the idempotent execution. One Nest interceptor instead of two, because every global interceptor
 * adds Nest's per-layer machinery (a deferred observable, an async resource, promises) to every
 * request of every route, decorated or not.
 * @internal bound by `ResilienceModule` (with `interceptors.mount: false`, bind the two
 * interceptors yourself, idempotency first).
 */
@Injectable()
export class MountedInterceptor implements NestInterceptor {
  constructor(
    private readonly idempotency: IdempotencyInterceptor,
    private readonly resilience: ResilienceInterceptor,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    // the resilience interceptor only reads metadata here; its work starts when subscribed
    return this.idempotency.intercept(context, { handle: () => this.resilience.intercept(context, next) });
  }
}
