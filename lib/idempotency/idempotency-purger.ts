import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { describeError, ResilienceConfigError } from '../core/errors.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { IdempotencyStore } from '../core/idempotency/idempotency-store.interface.js';

/**
 * Options of {@link startPurger}.
 * @publicApi
 */
export interface IdempotencyPurgerOptions {
  /** Pause between two purge runs, in ms (a run is never started while the previous one is going). */
  interval: number;
  /** Rows deleted per statement. @default 1000 */
  batchSize?: number;
  /** Called with the number of rows a run deleted. */
  onPurged?: (deleted: number) => void;
  /** Called when a run fails (the database is down, …); the next run is still scheduled. @default ignore */
  onError?: (error: unknown) => void;
  /** Timer source. @default systemClock */
  clock?: Clock;
}

/**
 * Runs `store.purgeExpired()` every `interval` ms until the returned function is called. On
 * PostgreSQL the TypeORM store takes `pg_try_advisory_xact_lock` per batch, so of many instances
 * only one purges at a time and the others skip their run. Timers are `unref`'d: the purger never
 * keeps the process alive.
 * @returns `stop()`: cancels the next run and resolves once a run in progress has finished
 * @example
 * const stop = startPurger(store, { interval: 60_000 });
 * // on shutdown
 * await stop();
 * @publicApi
 */
export function startPurger(store: IdempotencyStore, options: IdempotencyPurgerOptions): () => Promise<void> {
  const { interval, batchSize = 1_000, onPurged, onError, clock = systemClock } = options;
  if (!Number.isFinite(interval) || interval <= 0) {
    throw new ResilienceConfigError(`The idempotency purge interval must be a positive number of ms, got ${interval}. Pass e.g. { interval: 60_000 }, or leave purgeInterval at 0 to not purge.`);
  }
  let stopped = false;
  let timer: TimerHandle | undefined;
  let running: Promise<void> = Promise.resolve();

  const run = async () => {
    try {
      const deleted = await store.purgeExpired({ batchSize, exclusive: true });
      onPurged?.(deleted);
    } catch (error) {
      onError?.(error);
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      running = run().then(schedule);
    }, interval);
    (timer as { unref?: () => void } | undefined)?.unref?.();
  };

  schedule();
  return async () => {
    stopped = true;
    if (timer !== undefined) clock.clearTimeout(timer);
    await running;
  };
}

/**
 * Runs {@link startPurger} for the module's store when `forRoot({ idempotency: { purgeInterval } })`
 * is set, from application bootstrap until shutdown. Failed runs are logged and retried at the next
 * interval; they never affect live traffic.
 * @internal
 */
@Injectable()
export class IdempotencyPurgerService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Idempotency');
  private stop?: () => Promise<void>;

  constructor(
    @Inject(IdempotencyStore) private readonly store: IdempotencyStore,
    @Inject(RESOLVED_RESILIENCE_OPTIONS) private readonly options: ResolvedResilienceOptions,
  ) {}

  onApplicationBootstrap(): void {
    const interval = this.options.idempotency?.purgeInterval ?? 0;
    if (interval <= 0) return;
    this.stop = startPurger(this.store, {
      interval,
      clock: this.options.clock,
      onPurged: (deleted) => {
        if (deleted > 0) this.logger.debug(`Purged ${deleted} expired idempotency records.`);
      },
      onError: (error) =>
        this.logger.warn(`Purging expired idempotency records failed (${describeError(error)}); the next run is in ${interval} ms.`),
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop?.();
  }
}
