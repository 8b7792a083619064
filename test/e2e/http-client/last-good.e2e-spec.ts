import { HttpClient } from 'nest-resilience/http';
import { EventRecorder, FakeClock, seededRandom } from 'nest-resilience/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type Upstream } from './upstreams.js';

describe('HttpClient lastGood: the last good answer of a GET while the origin fails (real loopback upstream, fake clock)', () => {
  let upstream: Upstream;
  let down = false;

  beforeAll(async () => {
    upstream = await startUpstream((request) => (down ? { status: 503 } : request.path.startsWith('/bad') ? { status: 404 } : { status: 200, body: { path: request.path } }));
  });
  afterAll(async () => {
    await upstream.close();
  });

  function client(clock: FakeClock, events: EventRecorder) {
    return new HttpClient(
      'weather',
      { baseUrl: upstream.url, retry: false, circuitBreaker: false, lastGood: { ttl: 10_000, maxEntries: 2 } },
      { env: { clock, random: seededRandom(1), events: events.sink } },
    );
  }

  it('answers it with stale.ageMs and resilience-stale while the origin answers 503, never at or past ttl, and only for the same URL', async () => {
    down = false;
    const clock = new FakeClock();
    const events = new EventRecorder();
    const weather = client(clock, events);
    try {
      const fresh = await weather.get('/forecast/paris');
      expect(fresh.stale).toBeUndefined();
      expect(fresh.headers['resilience-stale']).toBeUndefined();
      down = true;
      await clock.advance(4_200);
      const stale = await weather.get('/forecast/paris');
      expect(stale).toMatchObject({ status: 200, data: { path: '/forecast/paris' }, stale: { ageMs: 4_200 } });
      expect(stale.headers['resilience-stale']).toBe('4');
      expect(events.named('fallback_used')).toMatchObject([{ outcome: 'last_good', policy: `http:weather@${upstream.url}` }]);
      await expect(weather.get('/forecast/paris?days=2')).rejects.toMatchObject({ code: 'http_status', status: 503 });
      await clock.advance(5_800);
      await expect(weather.get('/forecast/paris')).rejects.toMatchObject({ code: 'http_status', status: 503 });
    } finally {
      await weather.close();
    }
  });

  it('keeps at most maxEntries URLs, and never serves a permanent failure from it', async () => {
    down = false;
    const clock = new FakeClock();
    const weather = client(clock, new EventRecorder());
    try {
      for (const city of ['paris', 'berlin', 'rome']) await weather.get(`/forecast/${city}`);
      down = true;
      await expect(weather.get('/forecast/paris')).rejects.toMatchObject({ status: 503 });
      expect((await weather.get('/forecast/rome')).stale).toBeDefined();
      expect((await weather.get('/forecast/berlin')).stale).toBeDefined();
    } finally {
      await weather.close();
    }
    down = false;
    const other = client(new FakeClock(), new EventRecorder());
    try {
      await expect(other.get('/bad')).rejects.toMatchObject({ status: 404 });
    } finally {
      await other.close();
    }
  });

  it('refuses an invalid ttl at construction', () => {
    expect(() => new HttpClient('weather', { baseUrl: upstream.url, lastGood: { ttl: -1 } })).toThrow(
      'The HTTP client "weather" has lastGood.ttl -1. Give how long a result may be served, in ms (> 0).',
    );
  });

  it('refuses lastGood.shared at construction, naming where sharing is done instead', () => {
    expect(() => new HttpClient('weather', { baseUrl: upstream.url, lastGood: { ttl: 1_000, shared: true } })).toThrow(
      'The HTTP client "weather" sets lastGood.shared: true, which HTTP clients do not support (their answers stay in-process). ' +
        'Remove lastGood.shared, and put @Fallback({ lastGood: { ttl, shared: true } }) on the provider method that calls the client to share its results.',
    );
  });
});
