export * from './clock.js';
export * from './random.js';
export * from './errors.js';
export * from './events.js';
export * from './policy.js';
export { throwIfAborted } from './signals.js';
