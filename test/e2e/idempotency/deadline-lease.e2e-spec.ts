import { Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore, Timeout } from 'nest-resilience';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, gate, until, type IdempotencyTestApp } from './support.js';

let hold = gate();
let entered = 0;

@Controller('payments')
class PaymentsController {
  /** A route with a 2 s deadline and no lease of its own: its lease follows the deadline. */
  @Post()
  @Idempotent()
  @Timeout({ total: 2_000 })
  async pay() {
    entered++;
    await hold.promise;
    return { paid: true };
  }
}

describe.each(platforms)("a 409's Retry-After on a route with a deadline (%s)", (platform) => {
  let harness: IdempotencyTestApp;
  let app: INestApplication;
  let store: InMemoryIdempotencyStore;

  beforeAll(async () => {
    store = new InMemoryIdempotencyStore();
    harness = await createIdempotencyApp(platform, { idempotency: { store }, controllers: [PaymentsController] }, { listen: true });
    app = harness.app;
  });
  afterAll(() => app?.close());

  it('never exceeds what the request in flight can still take (its 2 s deadline), where the default lease (60 s) was answered before', async () => {
    hold = gate();
    entered = 0;
    const first = request(app.getHttpServer()).post('/payments').set('Idempotency-Key', `pay-${platform}`).send({ amount: 10 });
    const firstDone = first.then((res) => res);
    await until(() => entered === 1, 5_000, 'the first request to reach its handler');
    const duplicate = await request(app.getHttpServer()).post('/payments').set('Idempotency-Key', `pay-${platform}`).send({ amount: 10 });
    expect(duplicate.status).toBe(409);
    const retryAfter = Number(duplicate.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(duplicate.body).toMatchObject({ code: 'idempotency_request_in_progress' });
    hold.open();
    expect((await firstDone).status).toBe(201);
  });
});
