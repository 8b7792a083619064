export { FakeClock } from './fake-clock.js';
export { EventRecorder } from './event-recorder.js';
export { seededRandom } from '../core/random.js';
export { observe, type ObservedPromise } from './observe.js';
