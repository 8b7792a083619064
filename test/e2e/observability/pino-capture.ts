import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { RequestMethod, type INestApplication, type ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Logger, LoggerModule } from 'nestjs-pino';
import { pinoHttp } from '../../../docs/snippets/observability/pino-http.options.js';
import type { Platform } from '../../support/app.js';

/** One pino JSON line. */
export type LogLine = Record<string, any>;

/**
 * An in-memory pino destination. nestjs-pino keeps ONE pino-http instance per process (the first
 * `LoggerModule` wins), so a spec file creates one capture and reuses it for every app.
 */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    for (const text of chunk.toString().split('\n')) {
      if (text.trim()) this.lines.push(JSON.parse(text));
    }
    done();
  }

  /** Lines written by the library (context `Resilience`). */
  resilience(): LogLine[] {
    return this.lines.filter((line) => line.context === 'Resilience');
  }

  clear(): void {
    this.lines.length = 0;
  }
}

/** The request id: the caller's `X-Request-Id`, else a fresh UUID. */
export function requestIdFrom(req: IncomingMessage): string {
  const header = req.headers['x-request-id'];
  return typeof header === 'string' && header ? header : randomUUID();
}

/** `LoggerModule.forRoot` with the observability guide's pino-http options, writing to `stream`. */
export function pinoLoggerModule(stream: LogCapture) {
  return LoggerModule.forRoot({
    // the guide's options (request id, redaction of the key in request and response headers)
    pinoHttp: { ...pinoHttp, stream, level: 'debug' },
    // explicit: nestjs-pino's default route never matches under platform-fastify
    forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
  });
}

/**
 * An app on `platform` whose Nest logger is nestjs-pino writing into `stream`. Under Fastify the
 * request id is Fastify's own (middie copies it onto the raw request before pino-http runs), so the
 * adapter gets the same `genReqId`.
 */
export async function createPinoApp(platform: Platform, stream: LogCapture, metadata: ModuleMetadata): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    ...metadata,
    imports: [pinoLoggerModule(stream), ...(metadata.imports ?? [])],
  }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter({ genReqId: (req: unknown) => requestIdFrom(req as IncomingMessage) }), { bufferLogs: true })
      : moduleRef.createNestApplication({ bufferLogs: true });
  app.useLogger(app.get(Logger));
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}
