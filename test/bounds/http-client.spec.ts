// HttpClient per-origin state (pipelines, rate-limit bucket and Retry-After pause, and the breaker,
// bulkhead and budget of `http:<client>@<origin>`): 10^5 distinct origins, heap after GC.
import { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { HttpClient } from 'nest-resilience/http';
import { FLOOD_KEYS, expectWithin, floodKeys, heapGrowthOf } from './heap.js';

/**
 * Answers every request in-process, as an upstream would: 10^5 real origins would need 10^5
 * listening addresses. `status` 429 answers with `Retry-After: 60`, which pauses the origin.
 */
class AnsweringDispatcher extends Dispatcher {
  constructor(private readonly status: number) {
    super();
  }

  override dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null, rawHeaders: [], rawTrailers: [] } as unknown as Dispatcher.DispatchController;
    queueMicrotask(() => {
      handler.onRequestStart?.(controller, {});
      const headers: Record<string, string> = { 'content-type': 'application/json', ...(this.status === 429 ? { 'retry-after': '60' } : {}) };
      handler.onResponseStart?.(controller, this.status, headers, '');
      handler.onResponseData?.(controller, Buffer.from('{"ok":true}'));
      handler.onResponseEnd?.(controller, {});
    });
    return true;
  }

  override async close(): Promise<void> {}
  override async destroy(): Promise<void> {}
}

function clientOf(status: number) {
  return new HttpClient('flood', {
    baseUrl: 'http://base.test',
    dispatcher: new AnsweringDispatcher(status),
    rateLimit: { requestsPerSecond: 1_000_000 },
    retry: false,
  });
}

async function callOrigins(client: HttpClient, count: number, prefix: string): Promise<void> {
  await floodKeys(count, (i) => client.get(`http://${prefix}-${i}.test/items`).catch(() => undefined));
}

describe('HttpClient per-origin state', () => {
  it.each([
    [200, 'answers'],
    [429, 'Retry-After pauses'],
  ])('10^5 distinct origins (%s: %s) keep the 1,000 most recent origins and their policies (< 16 MiB)', async (status) => {
    const warm = clientOf(status);
    await callOrigins(warm, 3_000, 'warm');
    await warm.close();

    const client = clientOf(status);
    try {
      const growth = await heapGrowthOf(() => callOrigins(client, FLOOD_KEYS, 'origin'), client);
      expectWithin(`HttpClient origins (10^5 origins, ${status === 429 ? 'each paused by Retry-After' : 'answered'})`, growth, 16 * 1024 * 1024);
      expect(client.circuitBreakers().length).toBeLessThanOrEqual(1_000);
      if (status === 429) {
        // the newest origins are still paused, the oldest forgotten with their pause
        expect(client.pausedUntil(`http://origin-${FLOOD_KEYS - 1}.test`)).toBeGreaterThan(Date.now());
        expect(client.pausedUntil('http://origin-0.test')).toBeUndefined();
      }
    } finally {
      await client.close();
    }
  }, 120_000);
});
