import { afterEach, describe, expect, it } from 'vitest';
import type { INestApplication } from '@nestjs/common';
import { InMemoryIdempotencyStore, ResilienceModule } from 'nest-resilience';
import { FakeClock } from 'nest-resilience/testing';
import { createApp } from '../../support/app.js';

/** The in-memory store, counting purge runs and the options they were given. */
class CountingStore extends InMemoryIdempotencyStore {
  readonly purges: Array<{ batchSize?: number; exclusive?: boolean } | undefined> = [];
  override async purgeExpired(options?: { batchSize?: number; exclusive?: boolean }): Promise<number> {
    this.purges.push(options);
    return super.purgeExpired();
  }
}

describe('forRoot({ idempotency: { purgeInterval } })', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('purges expired records every interval, one instance at a time, until the app closes', async () => {
    const clock = new FakeClock();
    const store = new CountingStore({ clock });
    app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ clock, idempotency: { store, purgeInterval: 60_000 } })],
    });
    await clock.advance(59_999);
    expect(store.purges).toHaveLength(0);
    await clock.advance(1);
    expect(store.purges).toEqual([{ batchSize: 1_000, exclusive: true }]);
    await clock.advance(120_000);
    expect(store.purges).toHaveLength(3);

    await app.close();
    app = undefined;
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(600_000);
    expect(store.purges).toHaveLength(3);
  });

  it('does not purge by default', async () => {
    const clock = new FakeClock();
    const store = new CountingStore({ clock });
    app = await createApp('express', { imports: [ResilienceModule.forRoot({ clock, idempotency: { store } })] });
    await clock.advance(24 * 3_600_000);
    expect(store.purges).toHaveLength(0);
    expect(clock.pendingTimers).toBe(0);
  });
});
