import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';

/** The two HTTP platforms every e2e spec runs on. */
export const platforms = ['express', 'fastify'] as const;
export type Platform = (typeof platforms)[number];

/**
 * Compiles `metadata` into an app on `platform`, initialised and ready for supertest.
 * Listens on a loopback port when `listen` is true (needed for client-disconnect tests).
 */
export async function createApp(
  platform: Platform,
  metadata: ModuleMetadata,
  { listen = false, logger = false }: { listen?: boolean; logger?: false | ('error' | 'warn' | 'log')[] } = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger })
      : moduleRef.createNestApplication({ logger });
  if (listen) await app.listen(0, '127.0.0.1');
  else await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

/** Base URL of an app started with `listen: true`. */
export async function appUrl(app: INestApplication): Promise<string> {
  const url = await app.getUrl();
  return url.replace('[::1]', '127.0.0.1');
}
