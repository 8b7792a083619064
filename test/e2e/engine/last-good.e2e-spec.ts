import 'reflect-metadata';
import { Controller, Get, Injectable, Param, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CircuitBreaker, Fallback, Idempotent, InMemoryIdempotencyStore, ResilienceEvents, ResilienceModule, type ResilienceEvent } from 'nest-resilience';
import { FakeClock } from 'nest-resilience/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

@Injectable()
class Weather {
  down = false;
  calls = 0;
  error: () => Error = reset;

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 3 }, breakDuration: 60_000 })
  @Fallback({ lastGood: { ttl: 10_000, key: (city: string) => city, maxEntries: 2 } })
  async forecast(city: string): Promise<{ city: string; n: number }> {
    if (this.down) throw this.error();
    return { city, n: ++this.calls };
  }

  @Fallback('unknown', { lastGood: { ttl: 10_000 } })
  async summary(city: string): Promise<string> {
    if (this.down) throw reset();
    return `sunny in ${city}`;
  }
}

@Controller('weather')
class WeatherController {
  down = false;

  @Get(':city')
  @Fallback({ lastGood: { ttl: 30_000 } })
  forecast(@Param('city') city: string) {
    if (this.down) throw reset();
    return { city, temperature: 21 };
  }
}

describe('@Fallback({ lastGood }) on a provider method (fake clock)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start() {
    const clock = new FakeClock();
    app = await createApp('express', { imports: [ResilienceModule.forRoot({ clock })], providers: [Weather] });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    return { clock, events, weather: app.get(Weather) };
  }

  it('serves the last good result of the same key while the call fails transiently, never at or past ttl', async () => {
    const { clock, events, weather } = await start();
    expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 1 });
    weather.down = true;
    await clock.advance(9_999);
    expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 1 });
    expect(events.filter((event) => event.event === 'fallback_used')).toHaveLength(1);
    // another key has no last good result: the failure goes through
    await expect(weather.forecast('oslo')).rejects.toMatchObject({ code: 'ECONNRESET' });
    // at ttl it is too old: the call's own failure goes through (the breaker's third in a row)
    await clock.advance(1);
    await expect(weather.forecast('paris')).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('serves it while the breaker is open, and a fresh success replaces it', async () => {
    const { clock, weather } = await start();
    await weather.forecast('paris');
    weather.down = true;
    for (let n = 0; n < 3; n++) expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 1 });
    // open now: the call does not run, the last good result answers
    const callsBefore = weather.calls;
    expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 1 });
    expect(weather.calls).toBe(callsBefore);
    await clock.advance(60_000);
    weather.down = false;
    expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 2 });
    weather.down = true;
    expect(await weather.forecast('paris')).toEqual({ city: 'paris', n: 2 });
  });

  it('keeps at most maxEntries keys, the least recently used dropped first', async () => {
    const { weather } = await start();
    for (const city of ['paris', 'berlin', 'rome']) await weather.forecast(city);
    weather.down = true;
    await expect(weather.forecast('paris')).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await weather.forecast('berlin')).toMatchObject({ city: 'berlin' });
    expect(await weather.forecast('rome')).toMatchObject({ city: 'rome' });
  });

  it('is refused at start-up on an @Idempotent() provider method, naming the method and the fix', async () => {
    @Injectable()
    class Payouts {
      @Idempotent({ key: (payoutId: string) => payoutId })
      @Fallback({ lastGood: { ttl: 1_000 } })
      async send(payoutId: string): Promise<{ payoutId: string }> {
        return { payoutId };
      }
    }
    await expect(createApp('express', { imports: [ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore() } })], providers: [Payouts] })).rejects.toThrow(
      '@Fallback({ lastGood }) on Payouts.send would answer an @Idempotent() call with an older result, which its key would then replay as if the method had produced it. Remove lastGood from this method, or remove @Idempotent().',
    );
  });

  it('never answers a permanent failure from it', async () => {
    const { weather } = await start();
    await weather.forecast('paris');
    weather.down = true;
    weather.error = () => Object.assign(new Error('unknown city'), { status: 404 });
    await expect(weather.forecast('paris')).rejects.toThrow('unknown city');
  });

  it("falls back to the decorator's own source when there is no last good result", async () => {
    const { weather } = await start();
    weather.down = true;
    expect(await weather.summary('paris')).toBe('unknown');
    weather.down = false;
    expect(await weather.summary('paris')).toBe('sunny in paris');
    weather.down = true;
    expect(await weather.summary('paris')).toBe('sunny in paris');
  });
});

describe.each(platforms)('@Fallback({ lastGood }) on a route (%s)', (platform) => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('answers the last good body with Resilience-Stale: <age in seconds>; a fresh answer has no such header', async () => {
    const clock = new FakeClock();
    app = await createApp(platform, { imports: [ResilienceModule.forRoot({ clock })], controllers: [WeatherController] });
    const fresh = await request(app.getHttpServer()).get('/weather/paris').expect(200);
    expect(fresh.headers['resilience-stale']).toBeUndefined();
    app.get(WeatherController).down = true;
    await clock.advance(12_500);
    const stale = await request(app.getHttpServer()).get('/weather/paris').expect(200);
    expect(stale.body).toEqual({ city: 'paris', temperature: 21 });
    expect(stale.headers['resilience-stale']).toBe('12');
    // another URL has none: the failure is answered as usual
    await request(app.getHttpServer()).get('/weather/oslo').expect(503);
    await clock.advance(17_500);
    await request(app.getHttpServer()).get('/weather/paris').expect(503);
  });

  it('is refused at start-up on an @Idempotent() route, naming the route and the fix', async () => {
    @Controller('orders')
    class OrdersController {
      @Post()
      @Idempotent()
      @Fallback({ lastGood: { ttl: 1_000 } })
      create() {
        return { id: 1 };
      }
    }
    await expect(createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [OrdersController] })).rejects.toThrow(
      '@Fallback({ lastGood }) on POST OrdersController.create would answer an @Idempotent() request with an older result, which its key would then replay as if the handler had produced it. Remove lastGood from this route, or remove @Idempotent().',
    );
  });

  it('an invalid ttl refuses to start', async () => {
    @Controller('bad')
    class BadController {
      @Get()
      @Fallback({ lastGood: { ttl: 0 } })
      get() {
        return 'ok';
      }
    }
    await expect(createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [BadController] })).rejects.toThrow(
      '@Fallback() on BadController.get has lastGood.ttl 0. Give how long a result may be served, in ms (> 0).',
    );
  });
});
