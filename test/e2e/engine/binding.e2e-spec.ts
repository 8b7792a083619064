import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Scope, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import { REQUEST } from '@nestjs/core';
import { ResilienceModule, Retryable } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

const calls = { route: 0, transient: 0 };

/** A request-scoped provider: every controller that injects it becomes request-scoped too. */
@Injectable({ scope: Scope.REQUEST })
class RequestTag {
  constructor(@Inject(REQUEST) readonly request: { headers: Record<string, string> }) {}
}

/** A transient provider with a decorated method: one instance per consumer, bound as Nest creates it. */
@Injectable({ scope: Scope.TRANSIENT })
class TransientClient {
  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  async flaky(): Promise<never> {
    calls.transient++;
    throw new ServiceUnavailableException();
  }
}

@Controller('scoped')
class ScopedController {
  constructor(
    private readonly tag: RequestTag,
    private readonly client: TransientClient,
  ) {}

  /** A decorated route of a request-scoped controller: a new instance per request. */
  @Get('route')
  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  route() {
    calls.route++;
    if (calls.route % 3 !== 0) throw new ServiceUnavailableException();
    return { tag: this.tag.request.headers['x-tag'] };
  }

  @Get('transient')
  transient() {
    return this.client.flaky();
  }
}

describe.each(platforms)('binding request-scoped and transient instances (%s)', (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [ScopedController], providers: [RequestTag, TransientClient] });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('runs a decorated route of a request-scoped controller through the engine (retried on its per-request instance)', async () => {
    calls.route = 0;
    const response = await request(app.getHttpServer()).get('/scoped/route').set('x-tag', 'blue').expect(200);
    expect(response.body).toEqual({ tag: 'blue' });
    expect(calls.route).toBe(3);
  });

  it('runs a decorated method of a transient provider through the engine', async () => {
    calls.transient = 0;
    await request(app.getHttpServer()).get('/scoped/transient').expect(503);
    expect(calls.transient).toBe(3);
  });
});
