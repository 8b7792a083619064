import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Injectable, type INestMicroservice } from '@nestjs/common';
import { ClientProxyFactory, MessagePattern, Payload, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { CircuitBreaker, ResilienceModule, Retryable, Timeout, currentSignal } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/postgres.mjs';
import { until } from '../idempotency/support.js';
import { registerTestSdk } from '../observability/otel-sdk.js';

// The SDK is registered before any app exists, as `node --import ./otel.js main.js` does.
const sdk = registerTestSdk();

/** What the handlers saw: how each call ended, and the request id it ran under. */
@Injectable()
class Calls {
  readonly endings = new Map<string, string>();
}

/** A dependency whose circuit opens at the first failure and stays open. */
@Injectable()
class Inventory {
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async reserve(): Promise<unknown> {
    throw Object.assign(new Error('inventory down'), { status: 503 });
  }
}

@Controller()
class CallerController {
  constructor(
    private readonly calls: Calls,
    private readonly inventory: Inventory,
  ) {}

  @MessagePattern('work.long')
  @Timeout(5_000)
  async long(@Payload() data: { id: string }): Promise<unknown> {
    try {
      await sleep(3_000, undefined, { signal: currentSignal() });
      this.calls.endings.set(data.id, 'finished');
    } catch (error) {
      this.calls.endings.set(data.id, `aborted: ${(currentSignal()?.reason as Error | undefined)?.constructor.name}`);
      throw error;
    }
    return { done: true };
  }

  @MessagePattern('work.flaky')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 5 } })
  async flaky(): Promise<unknown> {
    throw Object.assign(new Error('dependency down'), { status: 503 });
  }

  /** No resilience decorator here: the library's error comes from the provider it calls. */
  @MessagePattern('stock.reserve')
  reserve(): Promise<unknown> {
    return this.inventory.reserve();
  }
}

async function errorOf(call: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    throw new Error(`expected an error, got ${JSON.stringify(await call)}`);
  } catch (error) {
    return error as Record<string, unknown>;
  }
}

describe('microservice callers over TCP: deadline, disconnect, spans, undecorated handlers', () => {
  let app: INestMicroservice;
  let port: number;
  let client: ClientProxy;
  let calls: Calls;

  /** A client that attaches `metadata` to every packet (Nest 12's TCP packet metadata). */
  const clientWith = async (metadata: Record<string, string>) => {
    const proxy = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    proxy.setOnDispatchHook((packet) => {
      packet.metadata = metadata;
    });
    await proxy.connect();
    return proxy;
  };

  beforeAll(async () => {
    port = await freePort();
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot()],
      controllers: [CallerController],
      providers: [Calls, Inventory],
    }).compile();
    app = moduleRef.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port }, logger: false });
    await app.listen();
    calls = app.get(Calls);
    client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await sdk.shutdown();
  });

  it("takes the caller's remaining budget (x-request-timeout-ms metadata) as the call's deadline", async () => {
    const caller = await clientWith({ 'x-request-timeout-ms': '150', 'x-request-id': 'req-budget' });
    try {
      const started = Date.now();
      const error = await errorOf(firstValueFrom(caller.send('work.long', { id: 'budget' })));
      expect(error).toMatchObject({ status: 503, code: 'timeout' });
      expect(Date.now() - started).toBeLessThan(1_500);
      await until(() => calls.endings.has('budget'));
      expect(calls.endings.get('budget')).toMatch(/^aborted/);
    } finally {
      await caller.close();
    }
  });

  it("aborts a message's work when its caller closes the connection", async () => {
    const caller = await clientWith({});
    const pending = firstValueFrom(caller.send('work.long', { id: 'gone' })).catch(() => undefined);
    await sleep(200);
    await caller.close();
    await pending;
    await until(() => calls.endings.has('gone'), 2_000);
    expect(calls.endings.get('gone')).toBe('aborted: OperationAbortedError');
  });

  it('puts the rpc attributes on each attempt span, and no HTTP resend count', async () => {
    const caller = await clientWith({ 'x-request-id': 'req-spans' });
    try {
      await errorOf(firstValueFrom(caller.send('work.flaky', {})));
    } finally {
      await caller.close();
    }
    const attempts = sdk.spans().filter((span) => span.name === 'resilience.attempt' && span.attributes['rpc.method'] === 'work.flaky');
    expect(attempts.map((span) => span.attributes)).toEqual([
      expect.objectContaining({ 'resilience.attempt': 1, 'rpc.system': 'nestjs', 'rpc.method': 'work.flaky', 'network.transport': 'tcp' }),
      expect.objectContaining({ 'resilience.attempt': 2, 'rpc.system': 'nestjs', 'rpc.method': 'work.flaky', 'network.transport': 'tcp' }),
    ]);
    expect(attempts.some((span) => 'http.request.resend_count' in span.attributes)).toBe(false);
  });

  it('answers an undecorated message handler whose provider circuit is open with the typed error (exception filter)', async () => {
    await errorOf(send('stock.reserve'));
    const refused = await errorOf(send('stock.reserve'));
    expect(refused).toMatchObject({ status: 503, code: 'circuit_open', retryAfterMs: expect.any(Number), detail: expect.any(String) });
  });

  const send = (pattern: string) => firstValueFrom(client.send(pattern, {}));
});
