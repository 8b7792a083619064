import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, currentIdempotencyTransaction } from 'nest-resilience';
import type { EntityManager } from 'typeorm';
import { appUrl, platforms } from '../../support/app.js';
import { createIdempotencyApp } from './support.js';
import { createStore, isTransactional, storeKinds, TestReport, type StoreUnderTest } from './stores.js';

const executions = new Map<string, number>();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Controller('reports')
class ReportsController {
  @Post()
  @Idempotent()
  async create(@Body() body: { title: string; run: string }) {
    executions.set(body.run, (executions.get(body.run) ?? 0) + 1);
    await sleep(40);
    return { run: body.run, title: body.title, execution: executions.get(body.run) };
  }
}

@Controller('reports')
class TransactionalReportsController {
  @Post('tx')
  @Idempotent({ transactional: true })
  async createInTransaction(@Body() body: { title: string; run: string }) {
    executions.set(body.run, (executions.get(body.run) ?? 0) + 1);
    const manager = currentIdempotencyTransaction<EntityManager>()!;
    const saved = await manager.save(TestReport, manager.create(TestReport, { requestKey: body.run, title: body.title }));
    await sleep(40);
    return { run: body.run, id: saved.id };
  }
}

async function fire(url: string, key: string, body: object, count: number) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json(), replayed: res.headers.get('idempotent-replayed') };
    }),
  );
}

/** What came back, for a failure message: `201 × 1, 409 × 48, 500 × 1 (internal_error)`. */
function statusesOf(results: readonly { status: number; body: { code?: unknown } }[]): string {
  const counts = new Map<string, number>();
  for (const { status, body } of results) {
    const answer = status === 201 || status === 409 ? String(status) : `${status} (${String(body?.code ?? JSON.stringify(body))})`;
    counts.set(answer, (counts.get(answer) ?? 0) + 1);
  }
  return [...counts].map(([answer, n]) => `${answer} × ${n}`).join(', ');
}

/** Fails naming every status that came back when one is neither 201 nor 409. */
function expectOnly201Or409(results: readonly { status: number; body: { code?: unknown } }[]): void {
  expect(results.filter((r) => r.status !== 201 && r.status !== 409).map((r) => r.status), `statuses: ${statusesOf(results)}`).toEqual([]);
}

describe.each(storeKinds)('50 concurrent requests with one key (%s store)', (kind) => {
  let store: StoreUnderTest;
  beforeAll(async () => {
    store = await createStore(kind, { poolSize: 60 });
  });
  afterAll(async () => {
    await store?.close();
  });

  describe.each(platforms)('on %s', (platform) => {
    let app: INestApplication;
    let url: string;
    beforeAll(async () => {
      ({ app } = await createIdempotencyApp(platform, { controllers: isTransactional(kind) ? [ReportsController, TransactionalReportsController] : [ReportsController], idempotency: { store: store.store } }, { listen: true }));
      url = await appUrl(app);
    });
    afterAll(async () => {
      await app?.close();
    });

    it('runs the handler exactly once; the others get 409 or the same replayed body, never a 5xx', async () => {
      const run = `${kind}-${platform}-lease`;
      const results = await fire(`${url}/reports`, `key-${run}`, { title: 'Q3', run }, 50);
      expect(executions.get(run), `statuses: ${statusesOf(results)}`).toBe(1);
      expectOnly201Or409(results);
      const created = results.filter((r) => r.status === 201);
      expect(created.length).toBeGreaterThanOrEqual(1);
      expect(created.filter((r) => r.replayed !== 'true')).toHaveLength(1);
      for (const r of created) expect(r.body).toEqual({ run, title: 'Q3', execution: 1 });
      for (const r of results.filter((r) => r.status === 409)) expect(r.body.code).toBe('idempotency_request_in_progress');
      // After the first completes, a retry is a replay.
      const [after] = await fire(`${url}/reports`, `key-${run}`, { title: 'Q3', run }, 1);
      expect(after).toMatchObject({ status: 201, replayed: 'true', body: { execution: 1 } });
    });

    // The memory store has no transactions (nothing to skip: the test is not declared for it).
    if (isTransactional(kind)) it('transactional: one business row and one execution', async () => {
      const run = `${kind}-${platform}-tx`;
      const results = await fire(`${url}/reports/tx`, `key-${run}`, { title: 'Q3', run }, 50);
      expectOnly201Or409(results);
      expect(executions.get(run), `statuses: ${statusesOf(results)}`).toBe(1);
      expect(await store.dataSource!.getRepository(TestReport).countBy({ requestKey: run }), `statuses: ${statusesOf(results)}`).toBe(1);
      const bodies = new Set(results.filter((r) => r.status === 201).map((r) => JSON.stringify(r.body)));
      expect(bodies.size).toBe(1);
      // Duplicates that arrived while the first transaction was open were told so at once.
      for (const r of results.filter((r) => r.status === 409)) expect(r.body.code).toBe('idempotency_request_in_progress');
      const [after] = await fire(`${url}/reports/tx`, `key-${run}`, { title: 'Q3', run }, 1);
      expect(after).toMatchObject({ status: 201, replayed: 'true' });
      expect(JSON.stringify(after.body)).toBe([...bodies][0]);
    });
  });
});
