import type { ResilienceEvent, ResilienceEventName, ResilienceEventSink } from '../core/events.js';

/**
 * Collects every event a policy emits, for assertions. Pass `recorder.sink` as the `events` of a
 * policy environment (or subscribe it to `ResilienceEvents`).
 * @example
 * const recorder = new EventRecorder();
 * const env = { clock, random: seededRandom(42), events: recorder.sink };
 * // … run a policy …
 * expect(recorder.named('retry').map((e) => e.delayMs)).toEqual([60, 90]);
 * @publicApi
 */
export class EventRecorder {
  /** Every event received, in order. */
  readonly events: ResilienceEvent[] = [];

  /** The sink to hand to policies. */
  readonly sink: ResilienceEventSink = (event) => {
    this.events.push(event);
  };

  /** The events called `name`, in order. */
  named(name: ResilienceEventName): ResilienceEvent[] {
    return this.events.filter((event) => event.event === name);
  }

  /** Forgets every recorded event. */
  clear(): void {
    this.events.length = 0;
  }
}
