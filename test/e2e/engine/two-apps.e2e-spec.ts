import 'reflect-metadata';
import { Controller, Get, Injectable, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import { CircuitBreaker, ResilienceModule, Retryable } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

/** Calls per application, keyed by the name each application's controller instance carries. */
const calls = new Map<string, { route: number; service: number }>();
const APP_NAME = 'APP_NAME';

function count(app: string, what: 'route' | 'service'): void {
  const entry = calls.get(app) ?? { route: 0, service: 0 };
  entry[what]++;
  calls.set(app, entry);
}

@Injectable()
class FlakyService {
  /** Opens after two consecutive failures. */
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 })
  async call(app: string): Promise<never> {
    count(app, 'service');
    throw new ServiceUnavailableException();
  }
}

@Controller('two')
class TwoAppsController {
  constructor(private readonly service: FlakyService) {}

  /** Retries with the module's default maxAttempts, which differs per application. */
  @Get('retry')
  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  retry() {
    const app = (this as unknown as Record<string, string>)[APP_NAME]!;
    count(app, 'route');
    throw new ServiceUnavailableException();
  }

  @Get('service')
  callService() {
    return this.service.call((this as unknown as Record<string, string>)[APP_NAME]!);
  }
}

async function appNamed(platform: (typeof platforms)[number], name: string, maxAttempts: number): Promise<INestApplication> {
  const app = await createApp(platform, {
    imports: [ResilienceModule.forRoot({ retry: { maxAttempts } })],
    controllers: [TwoAppsController],
    providers: [FlakyService],
  });
  // tells the handlers which application's instance they run on
  (app.get(TwoAppsController) as unknown as Record<string, string>)[APP_NAME] = name;
  return app;
}

describe.each(platforms)('two applications in one process (%s)', (platform) => {
  let first: INestApplication;
  let second: INestApplication;

  beforeAll(async () => {
    first = await appNamed(platform, 'first', 2);
    second = await appNamed(platform, 'second', 4);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
  });

  it('runs the same decorated route with each application’s own options', async () => {
    calls.clear();
    await request(first.getHttpServer()).get('/two/retry').expect(503);
    await request(second.getHttpServer()).get('/two/retry').expect(503);
    expect(calls.get('first')?.route).toBe(2);
    expect(calls.get('second')?.route).toBe(4);
  });

  it('keeps breaker state per application: opening one circuit leaves the other closed', async () => {
    calls.clear();
    await request(first.getHttpServer()).get('/two/service').expect(503);
    await request(first.getHttpServer()).get('/two/service').expect(503);
    const open = await request(first.getHttpServer()).get('/two/service').expect(503);
    expect(open.body).toMatchObject({ code: 'circuit_open' });
    expect(calls.get('first')?.service).toBe(2);

    const closed = await request(second.getHttpServer()).get('/two/service').expect(503);
    expect(closed.body.code).toBeUndefined();
    expect(calls.get('second')?.service).toBe(1);
  });
});
