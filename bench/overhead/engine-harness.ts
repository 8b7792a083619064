// The in-process harness of the engine benchmarks (engine-calls.ts, engine-allocations.ts): the
// overhead routes' handlers called the way Nest's router calls a bound route, with no HTTP
// server, client or framework around them.
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Module, type INestApplicationContext, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { ResilienceModule } from 'nest-resilience';
import { BareController, BothController, PAYLOAD, RetryableController, TimeoutController } from './routes.js';

/**
 * The variants: `bare` is the same call of an undecorated handler (what the harness itself costs),
 * the others carry the overhead benchmark's decorators; `-context` runs in a process where an
 * AsyncLocalStorage was entered once at start-up, as nestjs-pino, nestjs-cls or OpenTelemetry do.
 */
export const ENGINE_VARIANTS = ['bare', 'timeout', 'retryable', 'both', 'both-context'] as const;
export type EngineVariant = (typeof ENGINE_VARIANTS)[number];

const CONTROLLERS: Record<EngineVariant, Type> = {
  bare: BareController,
  timeout: TimeoutController,
  retryable: RetryableController,
  both: BothController,
  'both-context': BothController,
};

/** The variants `BENCH_VARIANTS` names (all by default), the bare call always among them and first. */
export function variantsToCount(): EngineVariant[] {
  const raw = process.env.BENCH_VARIANTS;
  if (raw === undefined || raw === '') return [...ENGINE_VARIANTS];
  const named = raw.split(',').map((name) => name.trim());
  const unknown = named.filter((name) => !ENGINE_VARIANTS.includes(name as EngineVariant));
  if (unknown.length > 0) throw new Error(`BENCH_VARIANTS names unknown variants: ${unknown.join(', ')}. Known: ${ENGINE_VARIANTS.join(', ')}.`);
  // the bare call is always counted: it is what the others are compared with
  return ENGINE_VARIANTS.filter((variant) => variant === 'bare' || named.includes(variant));
}

/** A variant's app, and a loop calling its route `count` times. */
export interface RouteCalls {
  readonly app: INestApplicationContext;
  /**
   * Calls the route `count` times, each answer awaited; returns how many calls failed (with
   * `tolerateFailures`; else a failure throws).
   */
  loop(count: number): Promise<number>;
}

/** Builds the app of `variant` and what calls its route as Nest's router does per request. */
export async function routeCalls(variant: EngineVariant, tolerateFailures: boolean): Promise<RouteCalls> {
  if (variant.endsWith('-context')) new AsyncLocalStorage().enterWith({});
  const controller = CONTROLLERS[variant];
  @Module({ imports: [ResilienceModule.forRoot()], controllers: [controller] })
  class EngineBenchModule {}
  const app = await NestFactory.createApplicationContext(EngineBenchModule, { logger: false });
  // the hidden argument through which Nest's router hands a bound route its call: internal, so
  // taken from the same build the package entry point resolves to
  const { RouteInvocation } = (await import(new URL('../../../dist/engine/binding/bound-method.js', import.meta.url).href)) as {
    RouteInvocation: new (context: ExecutionContextHost) => unknown;
  };
  const instance = app.get(controller) as { hello(invocation?: unknown): unknown };
  const socket = new Socket();
  const request = new IncomingMessage(socket);
  request.method = 'GET';
  request.url = '/hello';
  const response = new ServerResponse(request);
  response.assignSocket(socket);
  const handler = controller.prototype.hello as Function;
  const decorated = variant !== 'bare';
  // what Nest's router does per request: a context for the call, the handler called with its
  // parameters (here only the hidden one) and its result awaited
  const loop = async (count: number): Promise<number> => {
    let failed = 0;
    for (let index = 0; index < count; index++) {
      const context = new ExecutionContextHost([request, response, undefined], controller, handler);
      let answer: unknown;
      try {
        answer = await (decorated ? instance.hello(new RouteInvocation(context)) : instance.hello());
      } catch (error) {
        if (!tolerateFailures) throw error;
        failed++;
        continue;
      }
      if (answer !== PAYLOAD) throw new Error(`${variant}: the route answered something else than its payload.`);
    }
    return failed;
  };
  return { app, loop };
}
