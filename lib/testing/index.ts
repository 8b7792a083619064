/**
 * `nest-resilience/testing`: a fake clock, seeded randomness, an event recorder and `observe()`, to
 * test retry and timeout code without waiting.
 * @module nest-resilience/testing
 */
export { FakeClock } from './fake-clock.js';
export { EventRecorder } from './event-recorder.js';
export { seededRandom } from '../core/random.js';
export { observe, type ObservedPromise } from './observe.js';
