import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore } from 'nest-resilience';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp } from './support.js';

let runs = 0;

/** The key comes from the body, the way a message handler reads it from its payload. */
@Controller('orders')
class OrdersController {
  @Post()
  @Idempotent({ key: (body: { orderId?: string }) => body.orderId })
  place(@Body() body: { orderId: string; amount: number }) {
    runs++;
    return { orderId: body.orderId, amount: body.amount, run: runs };
  }
}

@Controller('both')
class BothController {
  @Post()
  @Idempotent({ key: (body: { id: string }) => body.id, keyResolver: (req: { body: { id: string } }) => req.body.id })
  place() {
    return {};
  }
}

describe.each(platforms)('@Idempotent({ key: (body, request) => … }) on an HTTP route (%s)', (platform) => {
  let app: INestApplication;
  beforeAll(async () => {
    ({ app } = await createIdempotencyApp(platform, { controllers: [OrdersController], idempotency: { store: new InMemoryIdempotencyStore() } }));
  });
  afterAll(() => app?.close());

  it('reads the key from the body instead of the header: the duplicate is replayed', async () => {
    const orderId = `order-${platform}`;
    const first = await request(app.getHttpServer()).post('/orders').send({ orderId, amount: 3 }).expect(201);
    const second = await request(app.getHttpServer()).post('/orders').send({ orderId, amount: 3 }).expect(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
  });

  it('refuses a request whose body has no key with 400 idempotency_key_missing', async () => {
    const response = await request(app.getHttpServer()).post('/orders').send({ amount: 3 }).expect(400);
    expect(response.body.code).toBe('idempotency_key_missing');
  });
});

describe('@Idempotent({ key, keyResolver })', () => {
  it('is refused at start-up: both read the key, keep key', async () => {
    await expect(createIdempotencyApp('express', { controllers: [BothController], idempotency: { store: new InMemoryIdempotencyStore() } })).rejects.toThrow(
      /BothController\.place sets both key and keyResolver; they do the same thing\. Keep key/,
    );
  });
});
