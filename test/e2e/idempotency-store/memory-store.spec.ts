import { FakeClock } from 'nest-resilience/testing';
import { InMemoryIdempotencyStore } from 'nest-resilience';
import { describeIdempotencyStoreContract } from './store-contract.js';

describeIdempotencyStoreContract('InMemoryIdempotencyStore (FakeClock)', async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const store = new InMemoryIdempotencyStore({ clock });
  return { store, shortMs: 1_000, pass: (ms) => clock.advance(ms), close: async () => store.onApplicationShutdown() };
}, { transactional: false });
