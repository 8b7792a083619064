// Root entry point. Never import typeorm or @nestjs/terminus from here (optional peers):
// those live behind the `nest-resilience/typeorm` and `nest-resilience/health` subpaths.
export * from './core/index.js';
export * from './observability/resilience-events.js';
export * from './idempotency/idempotency-store.interface.js';
