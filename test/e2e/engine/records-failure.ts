import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { catchError, throwError, type Observable } from 'rxjs';

let listener: ((error: unknown) => void) | undefined;

/** Resolves with the error the next call under {@link RecordsFailure} fails with. */
export function nextFailure(): Promise<unknown> {
  return new Promise((resolve) => (listener = resolve));
}

/** Reports the error a decorated handler's call failed with, as the interceptors around the handler see it. */
@Injectable()
export class RecordsFailure implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      catchError((error: unknown) => {
        listener?.(error);
        return throwError(() => error);
      }),
    );
  }
}
