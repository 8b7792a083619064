// IdempotencyCore's once-per-route warnings: 10^5 distinct routes, heap after GC.
import { describe, expect, it } from 'vitest';
import { IdempotencyCore, InMemoryIdempotencyStore, resolveIdempotencyOptions, type IdempotentRequest, type IdempotentResponse } from 'nest-resilience/core';
import { FakeClock } from 'nest-resilience/testing';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

const options = resolveIdempotencyOptions(undefined, undefined, undefined);
const response: IdempotentResponse = { status: () => 201, replayableHeaders: () => ({}), setHeader: () => undefined };

/** A request of an authenticated user on `route` with global keys: the core warns once per route. */
const requestOn = (route: string, key: string): IdempotentRequest => ({
  name: 'Flood.route',
  options,
  method: 'POST',
  url: `/${route}`,
  headers: { 'idempotency-key': key },
  body: {},
  route,
  request: {},
  hasUser: true,
});

function coreWith(warnings: string[]) {
  const clock = new FakeClock(1_700_000_000_000);
  return new IdempotencyCore({ store: new InMemoryIdempotencyStore({ clock, maxRecords: 1_000 }), clock, warn: (message) => warnings.push(message) });
}

describe('IdempotencyCore warnings', () => {
  it("10^5 distinct routes remember at most 1,000 once-per-route warnings (< 4 MiB, the store's 1,000 records included)", async () => {
    const warmWarnings: string[] = [];
    const warm = coreWith(warmWarnings);
    await floodKeys(2_000, (i) => warm.execute(requestOn(`POST /warm/${i}`, `w${i}`), response, async () => ({ kind: 'value', value: 1, emissions: 1, fromHandler: true })));

    const warnings: string[] = [];
    const core = coreWith(warnings);
    const growth = await heapGrowthOf(
      () => floodKeys(FLOOD_KEYS, (i) => core.execute(requestOn(`POST /tenant-${i}/orders`, `k${i}`), response, async () => ({ kind: 'value', value: 1, emissions: 1, fromHandler: true }))),
      core,
    );
    // the store keeps its own 1,000 records (~1 MB); the warnings add a set of 1,000 ids
    expectWithin('IdempotencyCore once-per-route warnings (10^5 routes)', growth, 4 * 1024 * 1024);
    const scopeWarnings = warnings.filter((warning) => /keys are global/.test(warning));
    expect(scopeWarnings).toHaveLength(1_000);
    expect(scopeWarnings[0]).toMatch(/^POST \/tenant-0\/orders /);
  }, 120_000);
});
