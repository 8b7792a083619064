import { Body, Controller, HttpException, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, IdempotencyTransaction, currentIdempotencyContext, currentIdempotencyTransaction } from 'nest-resilience';
import type { EntityManager } from 'typeorm';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp } from './support.js';
import { createStore, isTransactional, storeKinds, TestReport, type StoreUnderTest } from './stores.js';

interface CreateBody {
  readonly run: string;
  readonly title: string;
  readonly fail?: 'http' | 'crash';
  readonly big?: boolean;
}

const runs = new Map<string, number>();
/** Holds a run's (first) request inside its transaction, after its write, until the test lets it go. */
const holds = new Map<string, { entered(): void; released: Promise<void> }>();
/** Longest a test holds a request (a safety valve, never reached when duplicates are answered at once). */
const HOLD_LIMIT_MS = 3_000;

@Controller('tx')
class TransactionalController {
  @Post()
  @Idempotent({ transactional: true, maxResponseBytes: 1_000 })
  async create(@Body() body: CreateBody, @IdempotencyTransaction() manager: EntityManager) {
    runs.set(body.run, (runs.get(body.run) ?? 0) + 1);
    expect(currentIdempotencyTransaction()).toBe(manager);
    const saved = await manager.save(TestReport, manager.create(TestReport, { requestKey: body.run, title: body.title }));
    const hold = holds.get(body.run);
    holds.delete(body.run);
    if (hold) {
      hold.entered();
      await hold.released;
    }
    if (body.fail === 'http') throw new HttpException({ message: 'insufficient funds' }, 402);
    if (body.fail === 'crash') throw new Error('bug after the write');
    return { id: saved.id, title: body.title, fence: currentIdempotencyContext()?.fence, filler: body.big ? 'x'.repeat(2_000) : '' };
  }
}

describe.each(storeKinds.filter(isTransactional))('@Idempotent({ transactional: true }) (%s)', (kind) => {
  let store: StoreUnderTest;
  beforeAll(async () => {
    store = await createStore(kind);
  });
  afterAll(async () => {
    await store?.close();
  });
  const rows = (run: string) => store.dataSource!.getRepository(TestReport).countBy({ requestKey: run });

  describe.each(platforms)('on %s', (platform) => {
    let app: INestApplication;
    beforeAll(async () => {
      ({ app } = await createIdempotencyApp(platform, { controllers: [TransactionalController], idempotency: { store: store.store } }));
    });
    afterAll(async () => {
      await app?.close();
    });
    const post = (key: string, body: CreateBody) => request(app.getHttpServer()).post('/tx').set('Idempotency-Key', key).send(body);

    it("commits the handler's write with the record: one row, and the retry replays it", async () => {
      const run = `${kind}-${platform}-ok`;
      const first = await post(run, { run, title: 'Q3' }).expect(201);
      expect(first.body).toMatchObject({ title: 'Q3', fence: 1 });
      const replay = await post(run, { run, title: 'Q3' }).expect(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toEqual(first.body);
      expect(await rows(run)).toBe(1);
      expect(runs.get(run)).toBe(1);
    });

    it('answers 409 + Retry-After to a duplicate while the first is in its transaction, and replays the first after its commit', async () => {
      const run = `${kind}-${platform}-held`;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const entered = new Promise<void>((resolve) => holds.set(run, { entered: resolve, released }));
      const limit = setTimeout(release, HOLD_LIMIT_MS);
      const first = post(run, { run, title: 'Q3' }).then((response) => response);
      try {
        await entered;
        const duplicate = await Promise.race([post(run, { run, title: 'Q3' }).then((response) => response), released.then(() => 'released' as const)]);
        if (duplicate === 'released') throw new Error('The duplicate was answered only after the first request committed: it waited instead of getting 409.');
        expect(duplicate.status).toBe(409);
        expect(duplicate.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(duplicate.headers['retry-after']).toBe('1');
        expect(duplicate.body).toMatchObject({ status: 409, code: 'idempotency_request_in_progress' });
      } finally {
        clearTimeout(limit);
        release();
      }
      const committed = await first;
      expect(committed.status).toBe(201);
      const replay = await post(run, { run, title: 'Q3' }).expect(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toEqual(committed.body);
      expect(await rows(run)).toBe(1);
      expect(runs.get(run)).toBe(1);
    });

    it('rolls the write back when the handler throws; the key stays free and the retry runs once', async () => {
      const run = `${kind}-${platform}-fail`;
      await post(run, { run, title: 'Q3', fail: 'http' }).expect(402);
      await post(`${run}-crash`, { run: `${run}-crash`, title: 'Q3', fail: 'crash' }).expect(500);
      expect(await rows(run)).toBe(0);
      expect(await rows(`${run}-crash`)).toBe(0);
      // Same key, corrected request: not a 422, because nothing was stored.
      await post(run, { run, title: 'Q3' }).expect(201);
      expect(await rows(run)).toBe(1);
    });

    it('commits a response over maxResponseBytes without its body: delivered once, its writes kept, the retry answers idempotency_response_not_kept', async () => {
      const run = `${kind}-${platform}-big`;
      const first = await post(run, { run, title: 'Q3', big: true }).expect(201);
      expect(first.body.filler).toHaveLength(2_000);
      const retry = await post(run, { run, title: 'Q3', big: true }).expect(201);
      expect(retry.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.body.code).toBe('idempotency_response_not_kept');
      expect(runs.get(run)).toBe(1);
      expect(await rows(run)).toBe(1);
    });
  });
});
