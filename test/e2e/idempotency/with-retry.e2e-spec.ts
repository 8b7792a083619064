import { Body, Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore, Retryable, Timeout, UpstreamHttpError } from 'nest-resilience';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, gate, until, type IdempotencyTestApp } from './support.js';

const attempts = new Map<string, number>();

@Controller('charges')
class ChargesController {
  /** Fails twice with a transient upstream 503, then succeeds. */
  @Post()
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  @Idempotent()
  charge(@Body() body: { run: string }) {
    const attempt = (attempts.get(body.run) ?? 0) + 1;
    attempts.set(body.run, attempt);
    if (attempt < 3) throw new UpstreamHttpError(503);
    return { run: body.run, attempt };
  }
}

@Controller('refunds')
@Idempotent()
class RefundsController {
  /** A class-level @Idempotent() also satisfies the "retried POST" start-up rule. */
  @Post()
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  refund(@Body() body: { run: string }) {
    const attempt = (attempts.get(body.run) ?? 0) + 1;
    attempts.set(body.run, attempt);
    if (attempt < 2) throw new UpstreamHttpError(502);
    return { run: body.run, attempt };
  }
}

let zombieGate = gate();

@Controller('slow')
class SlowController {
  /** Ignores its abort signal: keeps running after the 503 at the deadline. */
  @Post()
  @Timeout(100)
  @Idempotent()
  async slow(@Body() body: { run: string }) {
    const attempt = (attempts.get(body.run) ?? 0) + 1;
    attempts.set(body.run, attempt);
    if (attempt === 1) await zombieGate.promise;
    return { run: body.run, attempt };
  }
}

describe.each(platforms)('@Idempotent() with @Retryable() (%s)', (platform) => {
  let harness: IdempotencyTestApp;
  let app: INestApplication;
  beforeAll(async () => {
    harness = await createIdempotencyApp(platform, { controllers: [ChargesController, RefundsController, SlowController], idempotency: { store: new InMemoryIdempotencyStore() } });
    app = harness.app;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('retries inside one claim: the response after the third attempt is stored once and replayed', async () => {
    const run = `${platform}-charge`;
    const first = await request(app.getHttpServer()).post('/charges').set('Idempotency-Key', run).send({ run }).expect(201);
    expect(first.body).toEqual({ run, attempt: 3 });
    const replay = await request(app.getHttpServer()).post('/charges').set('Idempotency-Key', run).send({ run }).expect(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toEqual({ run, attempt: 3 });
    expect(attempts.get(run)).toBe(3);
    expect(harness.named('idempotency_executed').filter((e) => e.policy === 'POST /charges')).toHaveLength(1);
  });

  it('accepts a retried POST in a class-level @Idempotent() controller', async () => {
    const run = `${platform}-refund`;
    const first = await request(app.getHttpServer()).post('/refunds').set('Idempotency-Key', run).send({ run }).expect(201);
    expect(first.body).toEqual({ run, attempt: 2 });
    await request(app.getHttpServer()).post('/refunds').set('Idempotency-Key', run).send({ run }).expect(201);
    expect(attempts.get(run)).toBe(2);
  });

  it('keeps the key of a handler still running after its timeout until it settles, then frees it', async () => {
    const run = `${platform}-zombie`;
    zombieGate = gate();
    const post = () => request(app.getHttpServer()).post('/slow').set('Idempotency-Key', run).send({ run });
    const timedOut = await post();
    expect(timedOut.status).toBe(503);
    expect(timedOut.body.code).toBe('timeout');
    // The first handler is still running: a retry must not overlap it.
    const duringZombie = await post();
    expect(duringZombie.status).toBe(409);
    expect(attempts.get(run)).toBe(1);
    zombieGate.open();
    // Released once the abandoned handler settled: the retry runs it again.
    await until(async () => (await post()).status === 201, 2_000, 'the key to be free');
    expect(harness.named('idempotency_released').at(-1)).toMatchObject({ policy: 'POST /slow', status: 503 });
    expect(attempts.get(run)).toBe(2);
  });
});
