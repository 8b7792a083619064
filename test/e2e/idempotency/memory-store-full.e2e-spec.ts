// The bounded in-memory store behind a real Nest app: 503 idempotency_store_full when only
// requests in progress are left to evict, the NODE_ENV=production warning, and the start-up check
// of maxResponseBytes against the store's maxBytes.
import { Body, Controller, Post, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore, ResilienceModule, type IdempotencyModuleOptions } from 'nest-resilience';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, gate, until } from './support.js';

const holds = new Map<string, Promise<void>>();
let executions = 0;

@Controller('jobs')
class JobsController {
  @Post()
  @Idempotent()
  async create(@Body() body: { id: string }) {
    executions++;
    await holds.get(body.id);
    return { id: body.id };
  }
}

describe.each(platforms)('InMemoryIdempotencyStore full of requests in progress (%s)', (platform) => {
  it('answers 503 idempotency_store_full with Retry-After without running the handler; once a request completes, its record makes room', async () => {
    const store = new InMemoryIdempotencyStore({ maxRecords: 2 });
    const { app, named } = await createIdempotencyApp(platform, { controllers: [JobsController], idempotency: { store } }, { listen: true });
    const server = app.getHttpServer();
    try {
      const first = gate();
      const second = gate();
      holds.set(`${platform}-a`, first.promise);
      holds.set(`${platform}-b`, second.promise);
      const running = [
        request(server).post('/jobs').set('Idempotency-Key', `${platform}-a`).send({ id: `${platform}-a` }),
        request(server).post('/jobs').set('Idempotency-Key', `${platform}-b`).send({ id: `${platform}-b` }),
      ].map((pending) => pending.then((response) => response));
      await until(() => store.size === 2, 5_000, 'two requests in progress');
      const before = executions;

      const refused = await request(server).post('/jobs').set('Idempotency-Key', `${platform}-c`).send({ id: `${platform}-c` });
      expect(refused.status).toBe(503);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body).toMatchObject({ status: 503, code: 'idempotency_store_full', title: 'Idempotency store full' });
      expect(refused.body.detail).toMatch(/too many requests are in progress.*Retry in 1 s with the same key/);
      expect(executions).toBe(before);
      expect(named('idempotency_store_error').at(-1)).toMatchObject({ outcome: 'full', code: 'idempotency_store_full', detail: 'claim' });

      first.open();
      expect((await running[0]!).status).toBe(201);
      // the completed record is evicted for the new key: the retry of the refused request runs now
      const retried = await request(server).post('/jobs').set('Idempotency-Key', `${platform}-c`).send({ id: `${platform}-c` });
      expect(retried.status).toBe(201);
      expect(named('idempotency_evicted')).toHaveLength(1);
      second.open();
      expect((await running[1]!).status).toBe(201);
    } finally {
      await app.close();
    }
  });
});

class CapturingLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

async function start(idempotency: IdempotencyModuleOptions = {}) {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot({ idempotency })], controllers: [JobsController] }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  await app.close();
  return logger.warnings;
}

describe('start-up', () => {
  const nodeEnv = process.env.NODE_ENV;
  afterEach(() => {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  });

  it('warns once under NODE_ENV=production that @Idempotent() routes use the in-memory store, naming its bounds and the shared stores', async () => {
    process.env.NODE_ENV = 'production';
    const warnings = (await start()).filter((line) => /in-memory store/.test(line));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/NODE_ENV=production.*lost on restart, not shared between instances.*maxRecords 50000 \/ maxBytes 67108864.*TypeOrmIdempotencyStore.*RedisIdempotencyStore/);
  });

  it('does not warn outside production', async () => {
    process.env.NODE_ENV = 'development';
    expect((await start()).filter((line) => /in-memory store/.test(line))).toEqual([]);
  });

  it('refuses a maxResponseBytes larger than the in-memory store\'s maxBytes, naming both fixes', async () => {
    await expect(start({ store: new InMemoryIdempotencyStore({ maxBytes: 512 * 1024 }) })).rejects.toThrow(
      /JobsController\.create keeps responses of up to maxResponseBytes \(1048576\) bytes, more than the in-memory store holds in all \(maxBytes 524288\); lower maxResponseBytes.*or raise maxBytes/,
    );
  });
});
