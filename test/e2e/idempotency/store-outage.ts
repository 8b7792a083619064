// The "store stopped during traffic" scenario, shared by the PostgreSQL and Redis outage specs:
// a real server of the spec's own is stopped mid-traffic and started again, on both platforms.
import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, type IdempotencyStore } from 'nest-resilience';
import { platforms, type Platform } from '../../support/app.js';
import { createIdempotencyApp, until, type IdempotencyTestApp } from './support.js';

let executions = 0;
const executedKeys = new Set<string>();
/** Scenarios run so far in this file: each uses keys of its own, so two in one file never share one. */
let scenarios = 0;

@Controller('orders')
class OrdersController {
  @Post()
  @Idempotent()
  create(@Body() body: { item: string }) {
    executions++;
    executedKeys.add(body.item);
    return { item: body.item, execution: executions };
  }
}

/** A server the scenario may stop, and the store on it. */
export interface OutageTarget {
  /** Stops the server (an outage). */
  halt(): void | Promise<void>;
  /** Starts it again on the same address. */
  start(): void | Promise<void>;
  /** A store on that server for the app of `platform`. */
  storeFor(platform: Platform): IdempotencyStore;
}

/** One app per platform: traffic, a stop of the server, 503s with nothing run, recovery without a restart. */
export function describeStoreOutage(
  target: () => OutageTarget,
  more?: (context: { app: () => INestApplication; closeApp: () => Promise<void>; store: () => IdempotencyStore }) => void,
): void {
  const scenario = ++scenarios;
  describe.each(platforms)('on %s', (platform) => {
    const keyPrefix = `${platform}-${scenario}`;
    let harness: IdempotencyTestApp;
    let app: INestApplication;
    let store: IdempotencyStore;
    let closed = false;
    beforeAll(async () => {
      store = target().storeFor(platform);
      harness = await createIdempotencyApp(platform, { controllers: [OrdersController], idempotency: { store } });
      app = harness.app;
    });
    afterAll(async () => {
      if (!closed) await app?.close();
    });

    const post = (key: string) => request(app.getHttpServer()).post('/orders').set('Idempotency-Key', key).send({ item: key });

    it('answers 503 problem+json with Retry-After without running the handler while the store is down, and recovers without a restart', async () => {
      const first = await post(`${keyPrefix}-before`);
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      const traffic = Array.from({ length: 20 }, (_, i) => `${keyPrefix}-traffic-${i}`);
      const inFlight = traffic.map(async (key, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 15));
        return { key, status: (await post(key)).status };
      });
      await new Promise((resolve) => setTimeout(resolve, 120));
      await target().halt();
      const during = await Promise.all(inFlight);
      expect(during.filter((r) => r.status === 503).length).toBeGreaterThan(0);
      for (const { key, status } of during) {
        expect([201, 503]).toContain(status);
        // A 503 means the request was not executed: the client may safely retry it.
        if (status === 503) expect(executedKeys.has(key)).toBe(false);
      }

      const before = executions;
      for (const key of [`${keyPrefix}-down-1`, `${keyPrefix}-down-2`, `${keyPrefix}-down-3`]) {
        const res = await post(key);
        expect(res.status).toBe(503);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.headers['retry-after']).toBe('1');
        expect(res.body).toMatchObject({ status: 503, code: 'idempotency_store_unavailable' });
      }
      expect(executions).toBe(before);
      expect(harness.named('idempotency_store_error').filter((e) => e.detail === 'claim').length).toBeGreaterThanOrEqual(3);

      await target().start();
      // The connection (or pool) recovers by itself; a client retrying as told by Retry-After succeeds.
      await until(async () => (await post(`${keyPrefix}-down-1`)).status === 201, 10_000, 'the store to answer again');
      const replay = await post(`${keyPrefix}-down-1`).expect(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      await post(`${keyPrefix}-after`).expect(201);
      expect(executions).toBe(before + 2);
    });

    more?.({
      app: () => app,
      store: () => store,
      closeApp: async () => {
        closed = true;
        await app.close();
      },
    });
  });
}
