import 'reflect-metadata';
import { Controller, Get, Post, Req, type INestApplication } from '@nestjs/common';
import {
  Fallback,
  Idempotent,
  InMemoryIdempotencyStore,
  ResilienceModule,
  Retryable,
  Timeout,
  UpstreamHttpError,
  currentIdempotencyContext,
  currentSignal,
  getRequestInfo,
} from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

/**
 * How many AsyncLocalStorage stores Node writes onto a promise created now. On Node 20 and 22
 * every AsyncLocalStorage that was ever entered copies its store onto every new async resource
 * (each promise included) for the rest of the process's life, whoever created the resource; on
 * Node 24 (AsyncContextFrame) none does, and this is 0.
 */
function storesOnANewPromise(): number {
  return Object.getOwnPropertySymbols(Promise.resolve()).filter((symbol) => symbol.description === 'kResourceStore').length;
}

// Taken before this file runs any request, so it counts only what other code already enabled.
const storesBefore = storesOnANewPromise();
const attempts = new Map<string, number>();

@Controller()
class ContextController {
  /** Sees every scope the library opens: the request, the idempotent execution and the attempt. */
  @Post('orders')
  @Idempotent()
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  @Timeout(5_000)
  async order() {
    await Promise.resolve();
    const key = currentIdempotencyContext()?.key ?? '';
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    if (attempt === 1) throw new UpstreamHttpError(503);
    return {
      attempt,
      key,
      requestId: getRequestInfo()?.requestId,
      signal: currentSignal() instanceof AbortSignal,
      addedStores: storesOnANewPromise() - storesBefore,
    };
  }

  /** A fallback factory reads the call's arguments from the async context too. */
  @Get('quote')
  @Fallback((_error: unknown, req: { url: string }) => ({ url: req.url, addedStores: storesOnANewPromise() - storesBefore }))
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  quote(@Req() _req: { url: string }) {
    throw new UpstreamHttpError(503);
  }
}

describe.each(platforms)('what the library carries across async calls (%s)', (platform) => {
  let app: INestApplication;
  beforeAll(async () => {
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore() } })],
      controllers: [ContextController],
    });
  });
  afterAll(() => app?.close());

  it('gives the handler its request, idempotent execution and attempt at once, through one AsyncLocalStorage', async () => {
    const key = `order-${platform}`;
    const response = await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).set('x-request-id', `req-${platform}`).send({}).expect(201);
    expect(response.body).toEqual({ attempt: 2, key, requestId: `req-${platform}`, signal: true, addedStores: expect.any(Number) });
    // Each extra storage would tax every promise of the process, on every route.
    expect(response.body.addedStores).toBeLessThanOrEqual(1);
  });

  it('hands a fallback factory the call’s arguments, through the same AsyncLocalStorage', async () => {
    const response = await request(app.getHttpServer()).get('/quote?symbol=ACME').expect(200);
    expect(response.body).toEqual({ url: '/quote?symbol=ACME', addedStores: expect.any(Number) });
    expect(response.body.addedStores).toBeLessThanOrEqual(1);
  });
});
