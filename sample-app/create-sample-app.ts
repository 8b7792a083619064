import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { PROBLEM_JSON_CONTENT_TYPE } from 'nest-resilience';
import { Logger } from 'nestjs-pino';
import { serveApiDocs } from './api-docs.js';
import { AppModule } from './app.module.js';
import { answerClientError, leaveHostCheckToTheApp } from './common/client-error.js';
import { problemOfHttpError } from './common/problems.js';
import type { SampleAppOptions } from './sample-app.options.js';

/** Which HTTP platform the app runs on. */
export type SamplePlatform = 'express' | 'fastify';

/**
 * Builds the sample app (not listening yet) with pino as the Nest logger, the OpenAPI document on
 * `/docs`, shutdown hooks on unless `shutdownHooks: false` (its caller handles the signals), and,
 * with `options.natsUrl`, the NATS microservice of the "report ready" consumer connected (a hybrid
 * app: `app.listen()` is followed by `app.startAllMicroservices()`).
 * `main.ts` uses it (through `startSample`); so can a test that wants the real bootstrap.
 */
export async function createSampleApp(
  options: SampleAppOptions,
  { platform = 'express', shutdownHooks = true }: { platform?: SamplePlatform; shutdownHooks?: boolean } = {},
): Promise<INestApplication> {
  const module = AppModule.forRoot(options);
  let app: INestApplication;
  if (platform === 'fastify') {
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    // Fastify answers a malformed URL before routing, so Nest's filters never see it.
    const adapter = new FastifyAdapter({
      clientErrorHandler: answerClientError,
      frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
        const problem = problemOfHttpError(error);
        void reply.code(problem.getStatus()).type(PROBLEM_JSON_CONTENT_TYPE).send(JSON.stringify(problem.problem));
      },
    });
    app = await NestFactory.create(module, adapter, { bufferLogs: true });
  } else {
    app = await NestFactory.create(module, { bufferLogs: true });
  }
  const server = app.getHttpServer() as Server;
  leaveHostCheckToTheApp(server);
  // Fastify takes its handler as an option (above); Express leaves the server's to Node.
  if (platform === 'express') server.on('clientError', answerClientError);
  app.useLogger(app.get(Logger));
  if (shutdownHooks) app.enableShutdownHooks();
  if (options.natsUrl) {
    const { Transport } = await import('@nestjs/microservices');
    // inheritAppConfig: the app's global pipe and filters apply to the consumer too
    app.connectMicroservice<MicroserviceOptions>({ transport: Transport.NATS, options: { servers: [options.natsUrl] } }, { inheritAppConfig: true });
  }
  serveApiDocs(app, { ui: platform === 'express' });
  return app;
}
