// One overhead-benchmark server: a trivial GET route, bare or decorated, on one platform.
// Started by run.ts with BENCH_PLATFORM and BENCH_VARIANT; not meant to be run by hand.
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { ResilienceModule, type ResilienceModuleOptions } from 'nest-resilience';
import { platformFromEnv, serveBenchApp } from '../shared/server-harness.js';
import { BareController, BothController, RetryableController, TimeoutController } from './routes.js';
import { OVERHEAD_VARIANTS, type OverheadVariant } from './variants.js';

const controllers: Record<OverheadVariant, Type> = {
  'no-library': BareController,
  bare: BareController,
  timeout: TimeoutController,
  retryable: RetryableController,
  both: BothController,
  'bare-context': BareController,
  'both-context': BothController,
};

/**
 * BENCH_CHAOS: `off` (the default, no `chaos` option), `enabled` (runtime chaos on, no rule), or
 * `rule` (on, with a rule naming this route at rate 0: matched against the route of every attempt, never fires).
 */
function chaosOptions(): ResilienceModuleOptions {
  const mode = process.env.BENCH_CHAOS ?? 'off';
  if (mode === 'off') return {};
  // the bench servers run with NODE_ENV=production, where chaos needs allowInProduction
  if (mode === 'enabled') return { chaos: { enabled: true, allowInProduction: true } };
  if (mode === 'rule') return { chaos: { enabled: true, allowInProduction: true, rules: [{ target: { route: 'GET /hello' }, fault: { kind: 'exception' }, rate: 0 }] } };
  throw new Error(`BENCH_CHAOS must be off, enabled or rule (got "${mode}").`);
}

@Module({})
class OverheadModule {
  static forVariant(variant: OverheadVariant): DynamicModule {
    return {
      module: OverheadModule,
      imports: variant === 'no-library' ? [] : [ResilienceModule.forRoot(chaosOptions())],
      controllers: [controllers[variant]],
    };
  }
}

const variant = process.env.BENCH_VARIANT as OverheadVariant;
if (!OVERHEAD_VARIANTS.includes(variant)) throw new Error(`BENCH_VARIANT must be one of ${OVERHEAD_VARIANTS.join(', ')} (got "${variant}").`);
// what nestjs-pino, nestjs-cls or OpenTelemetry's context manager do in most real apps: from then
// on Node 20 tracks async context on every promise of the process
if (variant.endsWith('-context')) new AsyncLocalStorage<object>().enterWith({});
serveBenchApp(platformFromEnv(), async () => ({ module: OverheadModule.forVariant(variant) }));
