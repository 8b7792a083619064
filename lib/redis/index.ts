// The `nest-resilience/redis` subpath. Only the shared policy state for now; merged with the
// Redis idempotency store's exports.
export * from './policy-state.index.js';
