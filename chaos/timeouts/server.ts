// Child process of the timeout-heap scenario (started with --expose-gc): the timeout routes on
// BENCH_PLATFORM, and an IPC call `heap` that collects garbage and answers `heapUsed`.
import 'reflect-metadata';
import { platformFromEnv, serveBenchApp } from '../../bench/shared/server-harness.js';
import { timeoutHeapModule } from './timeout-app.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('Start this server with --expose-gc (`npm run chaos` does).');

serveBenchApp(platformFromEnv(), async () => ({
  module: timeoutHeapModule(),
  handlers: {
    // Several full collections: weak callbacks and finalizers free more on the next pass.
    heap: () => {
      for (let i = 0; i < 4; i++) gc();
      return process.memoryUsage().heapUsed;
    },
  },
}));
