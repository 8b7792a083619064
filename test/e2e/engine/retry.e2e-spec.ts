import 'reflect-metadata';
import { Controller, Get, Injectable, Post, Scope, ServiceUnavailableException, SetMetadata, type INestApplication } from '@nestjs/common';
import { Observable, concat, defer, from, isObservable, map, of, throwError } from 'rxjs';
import {
  CircuitBreaker,
  Idempotent,
  CircuitBreakerService,
  ResilienceModule,
  ResilienceService,
  Retryable,
  Timeout,
} from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { DEPENDENCY_URL, Dependency } from './dependency-client.js';
import { startDependency, type LoopbackServer } from './loopback-servers.js';

// Each path fails with 503 for its first two calls, then answers 200; /bad always answers 400.
const script = (path: string, call: number) => {
  if (path.startsWith('/bad')) return { status: 400, body: { error: 'bad input' } };
  if (path.startsWith('/down')) return { status: 503 };
  return call <= 2 ? { status: 503 } : { status: 200, body: { ok: true, call } };
};

@Controller('retry')
class RetryController {
  constructor(private readonly dependency: Dependency) {}

  @Get('flaky')
  @Retryable()
  flaky() {
    return this.dependency.get('/flaky');
  }

  @Get('bad')
  @Retryable()
  bad() {
    return this.dependency.get('/bad');
  }

  @Get('retry-then-timeout')
  @Retryable()
  @Timeout(2_000)
  retryFirst() {
    return this.dependency.get('/order-a');
  }

  @Get('timeout-then-retry')
  @Timeout(2_000)
  @Retryable()
  timeoutFirst() {
    return this.dependency.get('/order-b');
  }
}

/** Counts subscriptions to the Observable handlers. */
const streams = { flakyObservable: 0, emitsThenFails: 0, serviceObservable: 0 };

@Injectable()
class ReportsClient {
  calls = 0;
  constructor(private readonly dependency: Dependency) {}

  @Retryable()
  @SetMetadata('custom:marker', 'kept')
  async fetchReport(id: string): Promise<unknown> {
    this.calls++;
    return { id, upstream: await this.dependency.get('/service') };
  }

  @Retryable()
  stream(id: string): Observable<unknown> {
    return defer(() => from(this.dependency.get('/service-observable'))).pipe(map((upstream) => ({ id, upstream })));
  }
}

@Controller('observable')
class ObservableController {
  constructor(private readonly reports: ReportsClient) {}

  @Get('flaky')
  @Retryable()
  flaky(): Observable<unknown> {
    return defer(() =>
      ++streams.flakyObservable < 3 ? throwError(() => new ServiceUnavailableException()) : of({ ok: true, attempt: streams.flakyObservable }),
    );
  }

  @Get('emits-then-fails')
  @Retryable()
  emitsThenFails(): Observable<unknown> {
    streams.emitsThenFails++;
    return concat(of({ partial: true }), throwError(() => new ServiceUnavailableException()));
  }

  @Get('service')
  service(): Observable<unknown> {
    return this.reports.stream('s1');
  }
}

@Injectable({ scope: Scope.REQUEST })
class ScopedClient {
  static instances = 0;
  constructor(private readonly dependency: Dependency) {
    ScopedClient.instances++;
  }

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 })
  async call(): Promise<unknown> {
    return this.dependency.get('/down-scoped');
  }
}

@Controller('service')
class ServiceController {
  constructor(
    private readonly reports: ReportsClient,
    private readonly scoped: ScopedClient,
  ) {}

  @Get('report')
  report() {
    return this.reports.fetchReport('r1');
  }

  @Get('scoped')
  scopedCall() {
    return this.scoped.call();
  }
}

@Controller('unsafe')
class UnsafeController {
  @Post()
  @Retryable()
  create() {
    return { created: true };
  }
}

@Controller('idempotent')
class IdempotentController {
  @Post()
  @Retryable()
  @Idempotent()
  create() {
    return { created: true };
  }
}

@Controller('opted-in')
class OptedInController {
  @Post()
  @Retryable({ allowNonIdempotentMethod: true })
  create() {
    return { created: true };
  }
}

const fastRetries = { backoff: { type: 'constant', delay: 1 } } as const;

for (const platform of platforms) {
  describe(`retries (${platform})`, () => {
    let dependency: LoopbackServer;
    let app: INestApplication;

    beforeAll(async () => {
      dependency = await startDependency(script);
      app = await createApp(platform, {
        imports: [ResilienceModule.forRoot({ retry: fastRetries })],
        controllers: [RetryController, ServiceController, OptedInController, ObservableController],
        providers: [{ provide: DEPENDENCY_URL, useValue: dependency.url }, Dependency, ReportsClient, ScopedClient],
      });
    });

    afterAll(async () => {
      await app?.close();
      await dependency?.close();
    });

    it('answers 200 after exactly 3 attempts when the dependency fails twice with 503', async () => {
      const response = await request(app.getHttpServer()).get('/retry/flaky').expect(200);
      expect(response.body).toEqual({ ok: true, call: 3 });
      expect(dependency.callsTo('/flaky')).toBe(3);
    });

    it('never retries a 400 from the dependency', async () => {
      await request(app.getHttpServer()).get('/retry/bad').expect(400);
      expect(dependency.callsTo('/bad')).toBe(1);
    });

    it('gives the same pipeline and behaviour for both decorator orders', async () => {
      const resilience = app.get(ResilienceService);
      const a = resilience.describe(RetryController, 'retryFirst');
      const b = resilience.describe(RetryController, 'timeoutFirst');
      expect(a.map((stage) => stage.kind)).toEqual(['total-timeout', 'retry', 'attempt-timeout']);
      expect(a).toEqual(b);
      expect(a.find((stage) => stage.kind === 'attempt-timeout')?.options).toEqual({ attempt: 2_000 });

      const first = await request(app.getHttpServer()).get('/retry/retry-then-timeout').expect(200);
      const second = await request(app.getHttpServer()).get('/retry/timeout-then-retry').expect(200);
      expect(first.body).toEqual(second.body);
      expect(dependency.callsTo('/order-a')).toBe(3);
      expect(dependency.callsTo('/order-b')).toBe(3);
    });

    it('retries a decorated service method, keeping this, its name and its other metadata', async () => {
      const response = await request(app.getHttpServer()).get('/service/report').expect(200);
      expect(response.body).toEqual({ id: 'r1', upstream: { ok: true, call: 3 } });
      expect(dependency.callsTo('/service')).toBe(3);
      expect(app.get(ReportsClient).calls).toBe(3);
      const method = ReportsClient.prototype.fetchReport;
      expect(method.name).toBe('fetchReport');
      expect(method.length).toBe(1);
      expect(Reflect.getMetadata('custom:marker', method)).toBe('kept');
    });

    it('shares breaker state between instances of a request-scoped provider', async () => {
      const before = ScopedClient.instances;
      await request(app.getHttpServer()).get('/service/scoped').expect(503);
      await request(app.getHttpServer()).get('/service/scoped').expect(503);
      const refused = await request(app.getHttpServer()).get('/service/scoped').expect(503);
      expect(refused.body.code).toBe('circuit_open');
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(dependency.callsTo('/down-scoped')).toBe(2);
      expect(ScopedClient.instances - before).toBe(3);
      expect(app.get(CircuitBreakerService).get('ScopedClient.call')?.state).toBe('open');
    });

    it('retries a route returning an Observable, resubscribing for each attempt', async () => {
      streams.flakyObservable = 0;
      const response = await request(app.getHttpServer()).get('/observable/flaky').expect(200);
      expect(response.body).toEqual({ ok: true, attempt: 3 });
      expect(streams.flakyObservable).toBe(3);
    });

    it('never retries a stream that failed after its first emission', async () => {
      streams.emitsThenFails = 0;
      await request(app.getHttpServer()).get('/observable/emits-then-fails').expect(503);
      expect(streams.emitsThenFails).toBe(1);
    });

    it('keeps the Observable return type of a decorated service method and retries it', async () => {
      expect(isObservable(app.get(ReportsClient).stream('direct'))).toBe(true);
      const response = await request(app.getHttpServer()).get('/observable/service').expect(200);
      expect(response.body).toEqual({ id: 's1', upstream: { ok: true, call: 3 } });
      expect(dependency.callsTo('/service-observable')).toBe(3);
      expect(app.get(ResilienceService).describe(ReportsClient, 'stream').map((stage) => stage.kind)).toEqual([
        'total-timeout',
        'retry',
        'attempt-timeout',
      ]);
    });

    it('accepts @Retryable() on a POST route that opts in explicitly', async () => {
      await request(app.getHttpServer()).post('/opted-in').expect(201);
    });
  });

  describe(`start-up validation (${platform})`, () => {
    it('refuses to start with @Retryable() on a POST route without an opt-in, naming the fix', async () => {
      await expect(
        createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [UnsafeController] }),
      ).rejects.toThrow(
        '@Retryable() on POST UnsafeController.create would run the handler again after a failure, which can repeat its side effects. ' +
          'Add @Idempotent() to the route, or opt in with @Retryable({ allowNonIdempotentMethod: true }) if repeating is safe.',
      );
    });

    it('starts with @Retryable() on a POST route that is @Idempotent()', async () => {
      const app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [IdempotentController] });
      await app.close();
    });
  });
}
