// Child-process side of a benchmark server: one Nest app, listening on 127.0.0.1, driven over IPC.
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';

/** The two HTTP platforms the benchmarks run on. */
export type Platform = 'express' | 'fastify';

/** Functions the parent may call in the child by name (counters and the like). */
export type ChildHandlers = Record<string, (payload: unknown) => unknown>;

/** Messages from the parent. */
export type ParentMessage = { type: 'stop' } | { type: 'call'; id: number; name: string; payload?: unknown };

/** Messages to the parent. */
export type ChildMessage =
  | { type: 'ready'; url: string }
  | { type: 'failed'; error: string }
  | { type: 'reply'; id: number; result?: unknown; error?: string };

/** Reads the platform a child was started for (`BENCH_PLATFORM`). */
export function platformFromEnv(): Platform {
  const platform = process.env.BENCH_PLATFORM;
  if (platform !== 'express' && platform !== 'fastify') throw new Error(`BENCH_PLATFORM must be "express" or "fastify" (got "${platform}").`);
  return platform;
}

/**
 * Starts `module` on `platform` with Nest's logger off, listens on a free loopback port, reports
 * `ready` with its URL to the parent and serves IPC calls until told to stop or orphaned.
 * Every server answers the `cpu` call with its CPU time so far (µs), for CPU cost per request, and
 * `profile.start` / `profile.stop` (payload: file path) to profile exactly one measured window.
 * `setup` runs first (databases); its cleanup runs after the app closed.
 */
export function serveBenchApp(
  platform: Platform,
  setup: () => Promise<{ module: DynamicModule | Type; handlers?: ChildHandlers; close?: () => Promise<void> }>,
): void {
  if (!process.send) throw new Error('This file is a benchmark server: start it through bench/*/run.js (it needs an IPC channel).');
  const send = (message: ChildMessage) => process.send!(message);
  // An orphaned server would keep a port and a core busy: leave with the parent.
  process.on('disconnect', () => process.exit(0));
  void (async () => {
    let app: INestApplication | undefined;
    let close: (() => Promise<void>) | undefined;
    try {
      const built = await setup();
      close = built.close;
      app = await createApp(platform, built.module);
      await app.listen(0, '127.0.0.1');
      const { port } = app.getHttpServer().address() as AddressInfo;
      const handlers: ChildHandlers = { ...built.handlers, ...profilerHandlers(), cpu: () => cpuMicros() };
      process.on('message', (message: ParentMessage) => void onMessage(message, handlers));
      send({ type: 'ready', url: `http://127.0.0.1:${port}` });
    } catch (error) {
      send({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      process.exit(1);
    }

    async function onMessage(message: ParentMessage, handlers: ChildHandlers): Promise<void> {
      if (message.type === 'stop') {
        await app?.close().catch(() => undefined);
        await close?.().catch(() => undefined);
        // process.exit (not a signal) so that --cpu-prof writes its profile
        process.exit(0);
      }
      const handler = handlers[message.name];
      try {
        if (!handler) throw new Error(`No IPC handler "${message.name}" in this benchmark server.`);
        send({ type: 'reply', id: message.id, result: await handler(message.payload) });
      } catch (error) {
        send({ type: 'reply', id: message.id, error: error instanceof Error ? error.message : String(error) });
      }
    }
  })();
}

/** CPU time (user + system) this process has used so far, in µs. */
function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** V8 CPU profiler over the inspector session of this process (no --cpu-prof start-up noise). */
function profilerHandlers(): ChildHandlers {
  let session: Session | undefined;
  return {
    'profile.start': async () => {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    },
    'profile.stop': async (file) => {
      if (!session) throw new Error('profile.stop without profile.start.');
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(String(file), JSON.stringify(profile));
      session.disconnect();
      session = undefined;
    },
  };
}

async function createApp(platform: Platform, module: DynamicModule | Type): Promise<INestApplication> {
  if (platform === 'express') return NestFactory.create(module, { logger: false });
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  return NestFactory.create(module, new FastifyAdapter(), { logger: false });
}
