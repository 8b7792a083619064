// CPU cost of the library's interceptor per call, in process: the bare route's path (request scope,
// error mapping) against each decorated variant's (deadline, retry bookkeeping, attempt context).
//   npm run bench:interceptor
// No HTTP and no other process: the figure is the library's own work per request, which the HTTP
// benchmark (bench:overhead) cannot resolve below the noise of a shared machine.
import 'reflect-metadata';
import { Controller, Get, Module, type CallHandler } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { defer, type Observable } from 'rxjs';
import { ResilienceInterceptor, ResilienceModule, Retryable, Timeout } from 'nest-resilience';
import { median } from '../shared/load.js';
import { environment, markdownTable, writeResults } from '../shared/report.js';
import { OVERHEAD_VARIANTS, VARIANT_LABELS, type OverheadVariant } from './variants.js';

const PAYLOAD = { hello: 'world' };
/** Calls per round and variant, in batches of `CONCURRENCY` in flight (like autocannon's 10 connections). */
const CALLS = Number(process.env.BENCH_CALLS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const CONCURRENCY = 10;

@Controller()
class RoutesController {
  @Get('bare')
  bare() {
    return PAYLOAD;
  }

  @Get('timeout')
  @Timeout(5000)
  timeout() {
    return PAYLOAD;
  }

  @Get('retryable')
  @Retryable()
  retryable() {
    return PAYLOAD;
  }

  @Get('both')
  @Timeout(5000)
  @Retryable()
  both() {
    return PAYLOAD;
  }
}

@Module({ imports: [ResilienceModule.forRoot()], controllers: [RoutesController] })
class InterceptorBenchModule {}

/** The variants measured here: the ones with the library loaded. */
type MeasuredVariant = Exclude<OverheadVariant, 'no-library'>;
const VARIANTS = OVERHEAD_VARIANTS.filter((variant): variant is MeasuredVariant => variant !== 'no-library');

/** A Fastify-shaped request and reply around a real Node response on a (never connected) socket. */
function contextFor(variant: MeasuredVariant, socket: Socket): ExecutionContextHost {
  const raw = new ServerResponse(new IncomingMessage(socket));
  Object.defineProperty(raw, 'socket', { value: socket });
  const request = { raw: { method: 'GET', url: `/${variant}`, headers: {} }, routeOptions: { url: `/${variant}` }, id: 'req-1' };
  const handler = RoutesController.prototype[variant] as (...args: unknown[]) => unknown;
  const context = new ExecutionContextHost([request, { raw }, undefined], RoutesController, handler);
  context.setType('http');
  return context;
}

/** What Nest hands the interceptor: the handler's value, produced asynchronously like Nest's own. */
const next: CallHandler = { handle: (): Observable<unknown> => defer(async () => PAYLOAD) };

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(InterceptorBenchModule, { logger: false });
  try {
    const interceptor = app.get(ResilienceInterceptor);
    // one keep-alive connection per call in flight, as autocannon's connections are
    const sockets = Array.from({ length: CONCURRENCY }, () => new Socket());
    const callOnce = (variant: MeasuredVariant, socket: Socket) =>
      new Promise<void>((resolve, reject) => {
        interceptor.intercept(contextFor(variant, socket), next).subscribe({ complete: resolve, error: reject });
      });
    /** CPU ns per call for `calls` calls of `variant`. */
    const measure = async (variant: MeasuredVariant, calls: number): Promise<number> => {
      const before = process.cpuUsage();
      for (let done = 0; done < calls; done += CONCURRENCY) {
        await Promise.all(sockets.map((socket) => callOnce(variant, socket)));
      }
      const used = process.cpuUsage(before);
      return ((used.user + used.system) * 1000) / calls;
    };

    for (const variant of VARIANTS) await measure(variant, CALLS);
    const samples = new Map<MeasuredVariant, number[]>(VARIANTS.map((variant) => [variant, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const variant = VARIANTS[(i + round) % VARIANTS.length]!;
        samples.get(variant)!.push(await measure(variant, CALLS));
      }
    }

    const bare = median(samples.get('bare')!);
    const rows = VARIANTS.map((variant) => {
      const ns = median(samples.get(variant)!);
      return [VARIANT_LABELS[variant], `${Math.round(ns)} ns`, variant === 'bare' ? '' : `+${Math.round(ns - bare)} ns`];
    });
    const header = `## Interceptor cost per call, in process (${ROUNDS} interleaved rounds × ${CALLS} calls, ${CONCURRENCY} in flight; medians)`;
    console.log(`\n${header}\n\n${markdownTable(['route', 'CPU per call', 'added to the bare route'], rows)}\n`);
    const file = writeResults('interceptor.json', {
      benchmark: 'interceptor',
      command: 'npm run bench:interceptor',
      settings: { calls: CALLS, rounds: ROUNDS, concurrency: CONCURRENCY },
      environment: environment(),
      results: Object.fromEntries(VARIANTS.map((variant) => [variant, { medianNsPerCall: median(samples.get(variant)!), rounds: samples.get(variant) }])),
    });
    console.log(`Results written to ${file}`);
  } finally {
    await app.close();
  }
}

await main();
