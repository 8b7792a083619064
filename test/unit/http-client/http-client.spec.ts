// Timing logic of the HttpClient, on the FakeClock with undici's MockAgent as the upstream: the
// pattern the README documents for testing code that uses a client.
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock, observe, seededRandom } from '../../../lib/testing/index.js';
import { noopEventSink } from '../../../lib/core/events.js';
import { HttpClient } from '../../../lib/http-client/http-client.js';
import type { HttpClientOptions } from '../../../lib/http-client/http-client.options.js';

const ORIGIN = 'http://upstream.test';
let agent: MockAgent;
let clock: FakeClock;
const sent: string[] = [];

/** Scripts `path` to answer `answers` in turn (the last one repeats), counting each request. */
function script(path: string, ...answers: Array<{ status: number; body?: unknown; headers?: Record<string, string> }>): void {
  let n = 0;
  agent
    .get(ORIGIN)
    .intercept({ path, method: () => true })
    .reply(() => {
      const answer = answers[Math.min(n++, answers.length - 1)]!;
      sent.push(`${path}@${clock.now()}`);
      return { statusCode: answer.status, data: JSON.stringify(answer.body ?? {}), responseOptions: { headers: { 'content-type': 'application/json', ...answer.headers } } };
    })
    .persist();
}

function client(options: Partial<HttpClientOptions> = {}): HttpClient {
  return new HttpClient('svc', { baseUrl: ORIGIN, dispatcher: agent, ...options }, { env: { clock, random: seededRandom(1), events: noopEventSink } });
}

/** Lets the mock agent and the client's callbacks run without moving time. */
async function settleIo(): Promise<void> {
  for (let i = 0; i < 20; i++) await clock.flush();
}

function fresh(): void {
  clock = new FakeClock(1_000_000);
  agent = new MockAgent();
  agent.disableNetConnect();
  sent.length = 0;
}

afterEach(async () => {
  await agent.close();
});

describe('HttpClient timing (FakeClock + MockAgent)', () => {
  it('waits for Retry-After before retrying a 429, and pauses every call to that origin meanwhile', async () => {
    fresh();
    script('/a', { status: 429, headers: { 'retry-after': '2' } }, { status: 200, body: { ok: 1 } });
    script('/b', { status: 200, body: { ok: 2 } });
    const svc = client({ retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 1 } } });
    const first = observe(svc.get('/a'));
    await settleIo();
    expect(sent).toEqual(['/a@1000000']);
    const second = observe(svc.get('/b'));
    await clock.advance(1_999);
    await settleIo();
    expect(sent).toHaveLength(1);
    expect(svc.pausedUntil()).toBe(1_002_000);
    await clock.advance(1);
    await settleIo();
    expect(sent.sort()).toEqual(['/a@1000000', '/a@1002000', '/b@1002000']);
    expect(first).toMatchObject({ settled: true, value: { data: { ok: 1 }, attempts: 2 } });
    expect(second).toMatchObject({ settled: true, value: { data: { ok: 2 }, attempts: 1 } });
  });

  it('fails a call at once, sending nothing, when the pause ends after its deadline', async () => {
    fresh();
    script('/a', { status: 503, headers: { 'retry-after': '30' } });
    script('/b', { status: 200 });
    const svc = client({ retry: false, timeout: { total: 5_000 } });
    await expect(svc.get('/a')).rejects.toMatchObject({ code: 'http_status', status: 503 });
    const refused = observe(svc.get('/b'));
    await settleIo();
    expect(refused.settled).toBe(true);
    expect(refused.error).toMatchObject({ code: 'rate_limited', attempts: 0, retryAfterMs: 30_000 });
    expect((refused.error as Error).message).toMatch(/asked for a pause \(Retry-After\) of another 30 s.*longer deadline/);
    expect(sent).toEqual(['/a@1000000']);
  });

  it('ignores Retry-After for the pause when haltOnRetryAfter is false', async () => {
    fresh();
    script('/a', { status: 429, headers: { 'retry-after': '30' } });
    script('/b', { status: 200 });
    const svc = client({ retry: false, haltOnRetryAfter: false });
    await expect(svc.get('/a')).rejects.toMatchObject({ status: 429 });
    await expect(svc.get('/b')).resolves.toMatchObject({ status: 200 });
  });

  it('spaces requests by the token bucket, and refuses a call whose wait would pass its deadline', async () => {
    fresh();
    script('/r', { status: 200 });
    const svc = client({ rateLimit: { requestsPerSecond: 2, burst: 1 }, timeout: { total: 1_200, attempt: 1_000 } });
    const calls = [observe(svc.get('/r')), observe(svc.get('/r')), observe(svc.get('/r'))];
    await settleIo();
    expect(sent).toEqual(['/r@1000000']);
    const late = observe(svc.get('/r'));
    await settleIo();
    // the fourth would have to wait 1500 ms: more than its 1200 ms deadline
    expect(late).toMatchObject({ settled: true, error: { code: 'rate_limited', attempts: 0 } });
    await clock.advance(500);
    await settleIo();
    await clock.advance(500);
    await settleIo();
    expect(sent).toEqual(['/r@1000000', '/r@1000500', '/r@1001000']);
    expect(calls.every((call) => call.settled && call.error === undefined)).toBe(true);
  });

  it('stops retrying when the retry budget of the client and origin is spent', async () => {
    fresh();
    script('/down', { status: 503 });
    const svc = client({ retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 10 }, budget: { ratio: 0.01, window: 1_000, minRetriesPerSecond: 1 } } });
    const first = observe(svc.get('/down'));
    await clock.advance(100);
    await settleIo();
    const second = observe(svc.get('/down'));
    await clock.advance(100);
    await settleIo();
    expect(first).toMatchObject({ settled: true, error: { code: 'http_status', attempts: 2 } });
    expect(second).toMatchObject({ settled: true, error: { code: 'http_status', attempts: 1 } });
    expect(sent).toHaveLength(3);
  });

  it('backs off with jitter from the seeded random between retries', async () => {
    fresh();
    script('/flaky', { status: 500 }, { status: 500 }, { status: 200 });
    const svc = client({ retry: { maxAttempts: 3, backoff: { type: 'exponential', base: 100, factor: 2, jitter: 'none' } } });
    const call = observe(svc.get('/flaky'));
    await clock.advance(99);
    await settleIo();
    expect(sent).toHaveLength(1);
    await clock.advance(1);
    await settleIo();
    expect(sent).toHaveLength(2);
    await clock.advance(200);
    await settleIo();
    expect(sent).toEqual(['/flaky@1000000', '/flaky@1000100', '/flaky@1000300']);
    expect(call).toMatchObject({ settled: true, value: { attempts: 3 } });
  });
});
