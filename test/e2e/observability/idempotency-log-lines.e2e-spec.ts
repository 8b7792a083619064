import { ConsoleLogger, Controller, HttpException, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Idempotent, ResilienceModule } from 'nest-resilience';

@Controller('orders')
class OrdersController {
  @Post()
  @Idempotent()
  create() {
    return { id: 1 };
  }

  /** A 503 is not stored: the key is released so that a retry runs again. */
  @Post('unavailable')
  @Idempotent()
  unavailable() {
    throw new HttpException('try later', 503);
  }
}

/** Starts the app with Nest's own ConsoleLogger at every level, and captures what it writes. */
async function appWithConsoleLogger(json: boolean): Promise<{ app: INestApplication; written: () => string[] }> {
  const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [OrdersController] }).compile();
  const app = moduleRef.createNestApplication({
    logger: new ConsoleLogger({ json, colors: false, logLevels: ['verbose', 'debug', 'log', 'warn', 'error', 'fatal'] }),
  });
  await app.init();
  const chunks: string[] = [];
  const capture = (chunk: unknown) => {
    chunks.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  return { app, written: () => chunks.join('').split('\n').filter((line) => line.length > 0) };
}

describe('what an idempotent request writes to the log', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await app?.close();
    app = undefined;
  });

  it("Nest's default (text) logger: one line per event, nothing above debug for a healthy request, and a released 503 says released", async () => {
    const started = await appWithConsoleLogger(false);
    app = started.app;
    await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', 'text-1').send({ a: 1 }).expect(201);
    const healthy = started.written();
    vi.restoreAllMocks();
    // one line for the one event, carrying its sentence and its fields (not an object block over 8 lines)
    expect(healthy, healthy.join('\n')).toHaveLength(1);
    expect(healthy[0]).toMatch(/ DEBUG \[Resilience\] Idempotent request on POST \/orders .*"event":"idempotency_executed"/);
    await app.close();

    const restarted = await appWithConsoleLogger(false);
    app = restarted.app;
    await request(app.getHttpServer()).post('/orders/unavailable').set('Idempotency-Key', 'text-2').send({ a: 1 }).expect(503);
    const released = restarted.written().filter((line) => line.includes('[Resilience]'));
    vi.restoreAllMocks();
    const executed = released.find((line) => /\bidempotency_executed\b/.test(line));
    expect(executed, released.join('\n')).toBeDefined();
    expect(executed).toMatch(/released/);
    expect(executed).not.toMatch(/executed and stored|stored for replay/);
  });

  it('a JSON logger: one JSON object per line and per event', async () => {
    const started = await appWithConsoleLogger(true);
    app = started.app;
    await request(app.getHttpServer()).post('/orders').set('Idempotency-Key', 'json-1').send({ a: 1 }).expect(201);
    await request(app.getHttpServer()).post('/orders/unavailable').set('Idempotency-Key', 'json-2').send({ a: 1 }).expect(503);
    const lines = started.written();
    vi.restoreAllMocks();
    const records = lines.map((line) => JSON.parse(line) as { context?: string; level?: string; message?: { event?: string; msg?: string } });
    const resilience = records.filter((record) => record.context === 'Resilience');
    expect(resilience.map((record) => record.message?.event)).toEqual(['idempotency_executed', 'idempotency_released', 'idempotency_executed']);
    expect(resilience.every((record) => record.level === 'debug')).toBe(true);
    expect(resilience[2]!.message!.msg).toMatch(/released/);
  });
});
