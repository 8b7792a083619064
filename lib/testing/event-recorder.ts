import type { ResilienceEvent, ResilienceEventName, ResilienceEventSink } from '../core/events.js';

/** Default of `EventRecorder`'s `capacity`. */
const DEFAULT_CAPACITY = 10_000;

/**
 * Collects the events a policy emits, for assertions. Pass `recorder.sink` as the `events` of a
 * policy environment (or subscribe it to `ResilienceEvents`). It keeps the newest `capacity`
 * events (10,000 by default), so a recorder left subscribed in a long-running process cannot grow
 * without bound; `dropped` counts the older ones it let go.
 * @example
 * const recorder = new EventRecorder();
 * const env = { clock, random: seededRandom(42), events: recorder.sink };
 * // … run a policy …
 * expect(recorder.named('retry').map((e) => e.delayMs)).toEqual([60, 90]);
 * @publicApi
 */
export class EventRecorder {
  /** The newest events received (at most `capacity`), oldest first. */
  readonly events: ResilienceEvent[] = [];
  /** How many older events were let go to stay within `capacity`. */
  dropped = 0;
  /** Most events kept. */
  readonly capacity: number;

  /** @param options.capacity most events kept (the oldest go first). @default 10_000 */
  constructor(options: { capacity?: number } = {}) {
    const capacity = options.capacity ?? DEFAULT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`EventRecorder: capacity must be a whole number >= 1 (got ${String(capacity)}); e.g. new EventRecorder({ capacity: 1000 }).`);
    }
    this.capacity = capacity;
  }

  /** The sink to hand to policies. */
  readonly sink: ResilienceEventSink = (event) => {
    if (this.events.length >= this.capacity) {
      this.events.shift();
      this.dropped++;
    }
    this.events.push(event);
  };

  /** The events called `name`, in order. */
  named(name: ResilienceEventName): ResilienceEvent[] {
    return this.events.filter((event) => event.event === name);
  }

  /** Forgets every recorded event. */
  clear(): void {
    this.events.length = 0;
    this.dropped = 0;
  }
}
