import { Module, RequestMethod, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerModule } from 'nestjs-pino';
import type { SampleAppOptions } from '../sample-app.options.js';
import { RequestIdMiddleware, requestIdFor } from './request-id.middleware.js';

// nestjs-pino's default route pattern never matches on Fastify; this one matches on both.
const ALL_ROUTES = { path: '{*splat}', method: RequestMethod.ALL };

/**
 * One JSON log line per request (pino-http) plus the library's resilience events, all carrying
 * the request id: the client's `X-Request-Id` when it sent a usable one, else a new UUID, echoed
 * in the `X-Request-Id` response header.
 *
 * Global, and registered before nestjs-pino's (global) LoggerModule, so that its request-id
 * middleware runs first on both platforms.
 */
@Module({})
export class LoggingModule implements NestModule {
  static forRoot(options: SampleAppOptions): DynamicModule {
    return {
      module: LoggingModule,
      global: true,
      imports: [
        LoggerModule.forRoot({
          forRoutes: [ALL_ROUTES],
          pinoHttp: {
            level: options.logLevel ?? process.env.LOG_LEVEL ?? 'info',
            // Only used if the middleware did not run (it always does for routed requests).
            genReqId: (req: IncomingMessage, res: ServerResponse) => {
              const id = requestIdFor(req);
              res.setHeader('X-Request-Id', id);
              return id;
            },
            customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
            // A 5xx answer (a failed readiness check, an open circuit) is not a crash: log it
            // without the stack trace of the placeholder error pino-http makes up for it.
            customErrorObject: (_req, _res, error, line: Record<string, unknown>) =>
              isPlaceholder(error) ? { ...line, err: undefined } : line,
            customErrorMessage: (_req, _res, error) => (isPlaceholder(error) ? 'request completed' : 'request errored'),
            serializers: {
              req: (req: { id: unknown; method: string; url: string; headers: Record<string, unknown> }) => ({
                id: req.id,
                method: req.method,
                url: req.url,
                account: req.headers['x-account-id'],
              }),
              res: (res: { statusCode: number; headers?: Record<string, unknown> }) => ({
                statusCode: res.statusCode,
                replayed: res.headers?.['idempotent-replayed'],
              }),
            },
          },
        }),
      ],
    };
  }

  /** Applies {@link RequestIdMiddleware} to every route. */
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestIdMiddleware).forRoutes(ALL_ROUTES);
  }
}

function isPlaceholder(error: Error): boolean {
  return error.message.startsWith('failed with status code ');
}
