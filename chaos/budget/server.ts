// Child process of the retry-budget scenario: the `@Retryable()` app on BENCH_PLATFORM, calling
// the failing dependency at CHAOS_UPSTREAM_URL. Started by chaos/scenarios/retry-budget.ts.
import 'reflect-metadata';
import { platformFromEnv, serveBenchApp } from '../../bench/shared/server-harness.js';
import { retryBudgetModule } from './budget-app.js';

const upstreamUrl = process.env.CHAOS_UPSTREAM_URL;
if (!upstreamUrl) throw new Error('CHAOS_UPSTREAM_URL is not set; start this server through `npm run chaos`.');

serveBenchApp(platformFromEnv(), async () => ({ module: retryBudgetModule(upstreamUrl) }));
