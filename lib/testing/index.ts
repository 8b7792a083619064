export { FakeClock } from './fake-clock.js';
export { seededRandom } from '../core/random.js';
