/**
 * Opaque handle returned by {@link Clock.setTimeout}.
 * @publicApi
 */
export type TimerHandle = unknown;

/**
 * The only source of time in the library. Every policy reads `now()` and schedules timers through
 * a `Clock`, so tests can swap in the `FakeClock` from `nest-resilience/testing` and step time by hand.
 * @publicApi
 */
export interface Clock {
  /** Milliseconds since the epoch (or any fixed origin): only differences are used. */
  now(): number;
  /** Schedules `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer created by {@link Clock.setTimeout}; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real clock: `Date.now()` and the global timers.
 * @publicApi
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
