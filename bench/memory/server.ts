// The memory benchmark's server: an app that imports ResilienceModule.forRoot() with no store (the
// default in-memory store), as a new user writes it, started with --expose-gc. Routes:
//   POST /echo  @Idempotent(), answers the 2 KB JSON body it got (the trial)
//   POST /big   @Idempotent(), answers a JSON body of BENCH_BIG_BYTES (default 5 MB)
// IPC: `heap` (full GC, then heap and RSS), `store` (records held), `executions`.
import 'reflect-metadata';
import { Body, Controller, Inject, Injectable, Module, Post } from '@nestjs/common';
import { Idempotent, IdempotencyStore, ResilienceModule } from 'nest-resilience';
import { platformFromEnv, serveBenchApp } from '../shared/server-harness.js';

const BIG_BYTES = Number(process.env.BENCH_BIG_BYTES ?? 5 * 1024 * 1024);
let executions = 0;

@Controller()
class EchoController {
  @Post('echo')
  @Idempotent()
  echo(@Body() body: unknown) {
    executions++;
    return body;
  }

  @Post('big')
  @Idempotent()
  big() {
    executions++;
    return { data: 'x'.repeat(BIG_BYTES) };
  }
}

/** Holds the store the module made, for the `store` call. */
@Injectable()
class StoreProbe {
  static store: IdempotencyStore | undefined;
  constructor(@Inject(IdempotencyStore) store: IdempotencyStore) {
    StoreProbe.store = store;
  }
}

@Module({ imports: [ResilienceModule.forRoot()], controllers: [EchoController], providers: [StoreProbe] })
class MemoryBenchModule {}

/** Heap after full collections (twice: the first may only queue finalisers), and RSS. */
function heapAfterGc(): { heapUsed: number; rss: number; external: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('The memory benchmark server needs --expose-gc.');
  gc();
  gc();
  const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
  return { heapUsed, rss, external: external + arrayBuffers };
}

serveBenchApp(platformFromEnv(), async () => ({
  module: MemoryBenchModule,
  handlers: {
    heap: () => heapAfterGc(),
    store: () => ({ records: (StoreProbe.store as { size?: number } | undefined)?.size ?? null }),
    executions: () => executions,
  },
}));
