import 'reflect-metadata';
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { Subject } from 'rxjs';
import request from 'supertest';
import {
  Bulkhead,
  CircuitBreaker,
  CircuitBreakerService,
  ResilienceEvents,
  ResilienceModule,
  ResilienceService,
  Retryable,
  type ReloadableResilienceOptions,
  type ResilienceEvent,
} from 'nest-resilience';
import { FakeClock } from 'nest-resilience/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';

@Controller('dependency')
class DependencyController {
  failing = true;
  calls = 0;

  @Get()
  @CircuitBreaker()
  get() {
    this.calls++;
    if (this.failing) throw new Error('dependency down');
    return 'ok';
  }
}

@Injectable()
class Flaky {
  attempts = 0;

  @Retryable()
  async call(): Promise<string> {
    this.attempts++;
    throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
  }
}

@Injectable()
class Gate {
  release: (() => void) | undefined;

  @Bulkhead()
  async hold(): Promise<string> {
    await new Promise<void>((resolve) => (this.release = resolve));
    return 'released';
  }
}

/**
 * Once the break of 10 s is over, a successful probe closes DependencyController's breaker, three
 * failures in a row keep it closed and the fourth opens it (a threshold of 4 is in force).
 */
async function expectClosedThenOpenedByFourFailures(app: INestApplication, clock: FakeClock): Promise<void> {
  const server = app.getHttpServer();
  const controller = app.get(DependencyController);
  const breakers = app.get(CircuitBreakerService);
  await clock.advance(10_000);
  controller.failing = false;
  await request(server).get('/dependency').expect(200);
  controller.failing = true;
  for (let n = 0; n < 3; n++) await request(server).get('/dependency').expect(500);
  expect(breakers.get('DependencyController.get')?.state).toBe('closed');
  await request(server).get('/dependency').expect(500);
  expect(breakers.get('DependencyController.get')?.state).toBe('open');
}

const consecutive = (threshold: number) => ({ strategy: { type: 'consecutive' as const, threshold }, breakDuration: 10_000 });
const noDelay = { backoff: { type: 'constant' as const, delay: 0 } };

describe('ResilienceService.reload()', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(clock = new FakeClock()) {
    app = await createApp('express', {
      imports: [ResilienceModule.forRoot({ clock, circuitBreaker: consecutive(2), retry: { maxAttempts: 2, ...noDelay }, bulkhead: { maxConcurrent: 1, maxQueue: 0 } })],
      controllers: [DependencyController],
      providers: [Flaky, Gate],
    });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    return { app, clock, events, service: app.get(ResilienceService), controller: app.get(DependencyController), breakers: app.get(CircuitBreakerService) };
  }

  it('keeps an open breaker open, and its new threshold applies from the next call once it closed', async () => {
    const { app, clock, events, service, controller, breakers } = await start();
    const server = app.getHttpServer();
    await request(server).get('/dependency').expect(500);
    await request(server).get('/dependency').expect(500);
    await request(server).get('/dependency').expect(503);
    expect(breakers.get('DependencyController.get')?.state).toBe('open');

    const result = service.reload({ circuitBreaker: consecutive(4) });
    // a new threshold judges differently: the window restarts, the state stays (said in the event)
    expect(result).toEqual({ changed: ['circuitBreaker'], resets: ['circuit breaker "DependencyController.get": window (strategy or slowCall changed)'] });
    expect(events.filter((event) => event.event === 'options_reloaded')).toMatchObject([
      { detail: 'circuitBreaker changed; reset: circuit breaker "DependencyController.get": window (strategy or slowCall changed)' },
    ]);
    expect(breakers.get('DependencyController.get')?.state).toBe('open');
    const answer = await request(server).get('/dependency').expect(503);
    expect(answer.body).toMatchObject({ code: 'circuit_open' });
    expect(controller.calls).toBe(2);

    // the break ends; a successful probe closes it; from now on 4 failures in a row open it, not 2
    await expectClosedThenOpenedByFourFailures(app, clock);
  });

  it('a breakDuration change keeps the window and state: nothing is reset', async () => {
    const { app, service, breakers } = await start();
    await request(app.getHttpServer()).get('/dependency').expect(500);
    expect(service.reload({ circuitBreaker: { ...consecutive(2), breakDuration: 5_000 } }).resets).toEqual([]);
    // the failure before the reload still counts: one more opens it
    await request(app.getHttpServer()).get('/dependency').expect(500);
    expect(breakers.get('DependencyController.get')?.state).toBe('open');
  });

  it('new retry options apply to the next call of a provider method', async () => {
    const { service, app } = await start();
    const flaky = app.get(Flaky);
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(2);
    service.reload({ retry: { maxAttempts: 4, ...noDelay } });
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(6);
  });

  it('keeps the calls in a bulkhead: a call holding the one slot still holds it, a larger limit admits more at once', async () => {
    const { service, app } = await start();
    const gate = app.get(Gate);
    const held = gate.hold();
    await Promise.resolve();
    await expect(gate.hold()).rejects.toMatchObject({ code: 'bulkhead_rejected' });
    expect(service.reload({ bulkhead: { maxConcurrent: 1, maxQueue: 5 } }).resets).toEqual([]);
    // the slot is still taken: the next call queues instead of running
    const queued = gate.hold();
    await Promise.resolve();
    const first = gate.release!;
    first();
    await expect(held).resolves.toBe('released');
    await new Promise((resolve) => setTimeout(resolve, 0));
    gate.release!();
    await expect(queued).resolves.toBe('released');
  });

  it('refuses an invalid reload with the start-up error text, and the options in force stay', async () => {
    const invalid: ReloadableResilienceOptions = { retry: { maxAttempts: 0 } };
    const startupError = await createApp('express', { imports: [ResilienceModule.forRoot(invalid)], providers: [Flaky] }).catch((error: Error) => error);
    expect(startupError).toBeInstanceOf(Error);

    const { service, app, events } = await start();
    const before = service.describe(Flaky, 'call');
    let refused: unknown;
    try {
      service.reload(invalid);
    } catch (error) {
      refused = error;
    }
    expect((refused as Error).message).toBe((startupError as Error).message);
    expect(events.filter((event) => event.event === 'options_reload_refused')).toMatchObject([{ detail: (startupError as Error).message }]);
    expect(events.filter((event) => event.event === 'options_reloaded')).toEqual([]);
    expect(service.describe(Flaky, 'call')).toEqual(before);
    const flaky = app.get(Flaky);
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(2);
  });

  it('refuses to change what was chosen at start-up, naming it', async () => {
    const { service } = await start();
    expect(() => service.reload({ clock: new FakeClock() } as ReloadableResilienceOptions)).toThrow(
      'ResilienceService.reload() cannot change clock: chosen at start-up. Restart the application to change it, or leave it out of the reload.',
    );
  });
});

describe('ResilienceModule.forRootAsync() with a changing source (reloads)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('applies each valid value to the next call, refuses an invalid one keeping the options in force, and stops listening at shutdown', async () => {
    const changes = new Subject<ReloadableResilienceOptions>();
    app = await createApp('express', {
      imports: [
        ResilienceModule.forRootAsync({
          useFactory: async () => ({ retry: { maxAttempts: 2, ...noDelay }, reloads: changes }),
        }),
      ],
      providers: [Flaky],
    });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    const flaky = app.get(Flaky);
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(2);

    changes.next({ retry: { maxAttempts: 3, ...noDelay } });
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(5);

    changes.next({ retry: { maxAttempts: -1 } });
    expect(events.filter((event) => event.event === 'options_reload_refused')).toHaveLength(1);
    expect(events.find((event) => event.event === 'options_reload_refused')?.detail).toMatch(/retry.maxAttempts is -1/);
    await expect(flaky.call()).rejects.toThrow();
    expect(flaky.attempts).toBe(8);

    await app.close();
    app = undefined;
    expect(changes.observed).toBe(false);
  });

  it('a new breaker threshold from the source keeps an open breaker open and judges the calls after it closed; an invalid value leaves it as it was', async () => {
    const clock = new FakeClock();
    const changes = new Subject<ReloadableResilienceOptions>();
    app = await createApp('express', {
      imports: [ResilienceModule.forRootAsync({ useFactory: async () => ({ clock, circuitBreaker: consecutive(2), reloads: changes }) })],
      controllers: [DependencyController],
    });
    const server = app.getHttpServer();
    const controller = app.get(DependencyController);
    const breakers = app.get(CircuitBreakerService);
    await request(server).get('/dependency').expect(500);
    await request(server).get('/dependency').expect(500);
    expect(breakers.get('DependencyController.get')?.state).toBe('open');

    changes.next({ circuitBreaker: consecutive(4) });
    changes.next({ circuitBreaker: { strategy: { type: 'consecutive', threshold: 0 } } });
    expect(breakers.get('DependencyController.get')?.state).toBe('open');
    expect((await request(server).get('/dependency').expect(503)).body).toMatchObject({ code: 'circuit_open' });
    expect(controller.calls).toBe(2);

    // closed by a probe; then 4 failures in a row open it (the refused threshold 0 never applied)
    await expectClosedThenOpenedByFourFailures(app, clock);
  });
});
