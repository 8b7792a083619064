import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';

/**
 * STUB — replaced by the idempotency work. Registered by ResilienceModule as the first (outermost)
 * APP_INTERCEPTOR, before ResilienceInterceptor.
 * @publicApi
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}
