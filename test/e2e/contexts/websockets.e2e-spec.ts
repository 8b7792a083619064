import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import {
  CircuitBreaker,
  Fallback,
  Idempotent,
  InMemoryIdempotencyStore,
  ResilienceModule,
  Retryable,
  Timeout,
  currentSignal,
} from 'nest-resilience';
import { io, type Socket as IoSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { fetchUpstream } from '../http/support.js';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { closeAll, dependencyScript, eventLog, GuardedDependency, Ledger, UPSTREAM_URL } from './support.js';

// WebSocket gateways with real servers and clients on loopback (the `ws` adapter with a `ws`
// client, socket.io with socket.io-client): the decorators hold on @SubscribeMessage handlers,
// errors reach the client as Nest's `exception` event carrying the problem object, @Idempotent
// reads its key from the message, and a client that disconnects aborts its messages' work.

@WebSocketGateway()
class QuotesGateway {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
    private readonly stock: GuardedDependency,
  ) {}

  // Nest applies no global exception filter to gateways: a decorator on the handler (any) is what
  // makes the adapter render a service's error for the client
  @SubscribeMessage('stock.reserve')
  @Timeout(5_000)
  async reserve(): Promise<unknown> {
    return this.stock.call();
  }

  @SubscribeMessage('quote.slow')
  @Timeout(150)
  async slow(): Promise<string> {
    this.ledger.run('slow');
    await sleep(2_000, undefined, { signal: currentSignal() });
    return 'late';
  }

  @SubscribeMessage('quote.fragile')
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async fragile(): Promise<unknown> {
    this.ledger.run('fragile');
    return fetchUpstream(`${this.upstream}/busy`);
  }

  @SubscribeMessage('quote.flaky')
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async flaky(): Promise<unknown> {
    this.ledger.run('flaky');
    return fetchUpstream(`${this.upstream}/down`);
  }

  @SubscribeMessage('quote.degraded')
  @Fallback(() => 'cached')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 10 } })
  async degraded(): Promise<unknown> {
    this.ledger.run('degraded');
    return fetchUpstream(`${this.upstream}/down`);
  }

  @SubscribeMessage('order.place')
  @Idempotent({ key: (data: { orderId: string }) => data.orderId })
  async place(@MessageBody() data: { orderId: string; amount: number }, @ConnectedSocket() _client: unknown): Promise<{ orderId: string; n: number }> {
    const n = this.ledger.run(`place:${data.orderId}`);
    await sleep(100);
    return { orderId: data.orderId, n };
  }

  @SubscribeMessage('report.build')
  @Timeout(10_000)
  async build(@MessageBody() data: { id: string }): Promise<string> {
    this.ledger.run(`build:${data.id}`);
    try {
      await sleep(5_000, undefined, { signal: currentSignal() });
    } catch (error) {
      this.ledger.aborted.push(data.id);
      throw error;
    }
    return 'built';
  }
}


/** What a client got for one message: the handler's value, or the `exception` event's object. */
type Answer = { value: unknown } | { exception: Record<string, unknown> };

/** One connected client of either library, sending a message and waiting for its answer. */
interface TestClient {
  call(event: string, data?: unknown): Promise<Answer>;
  close(): Promise<void>;
}

async function wsClient(url: string): Promise<TestClient> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  // answers arrive in order on one connection: each call takes the next one
  const waiting: Array<(answer: Answer) => void> = [];
  socket.on('message', (raw) => {
    const message = JSON.parse(String(raw)) as unknown;
    const answer: Answer =
      typeof message === 'object' && message !== null && (message as { event?: unknown }).event === 'exception'
        ? { exception: (message as { data: Record<string, unknown> }).data }
        : { value: message };
    waiting.shift()?.(answer);
  });
  return {
    call: (event, data = {}) =>
      new Promise<Answer>((resolve) => {
        waiting.push(resolve);
        socket.send(JSON.stringify({ event, data }));
      }),
    close: async () => {
      socket.close();
      await new Promise((resolve) => socket.once('close', resolve));
    },
  };
}

async function ioClient(url: string): Promise<TestClient> {
  const socket: IoSocket = io(url, { transports: ['websocket'], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return {
    call: (event, data = {}) =>
      new Promise<Answer>((resolve) => {
        const onException = (exception: Record<string, unknown>) => resolve({ exception });
        socket.once('exception', onException);
        socket.emit(event, data, (value: unknown) => {
          socket.off('exception', onException);
          resolve({ value });
        });
      }),
    close: async () => {
      socket.disconnect();
    },
  };
}

type Library = 'ws' | 'socket.io';

async function createGatewayApp(library: Library, upstream: string): Promise<{ app: INestApplication; url: string }> {
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore() } })],
    providers: [QuotesGateway, GuardedDependency, Ledger, { provide: UPSTREAM_URL, useValue: upstream }],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  app.useWebSocketAdapter(library === 'ws' ? new WsAdapter(app) : new IoAdapter(app));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: library === 'ws' ? `ws://127.0.0.1:${port}` : `http://127.0.0.1:${port}` };
}

describe.each<Library>(['ws', 'socket.io'])('WebSocket gateway on the %s adapter', (library) => {
  let upstream: LoopbackServer;
  let app: INestApplication;
  let url: string;
  let client: TestClient;
  let ledger: Ledger;
  const { events, listen } = eventLog();
  const connect = () => (library === 'ws' ? wsClient(url) : ioClient(url));

  beforeAll(async () => {
    upstream = await startDependency(dependencyScript);
    ({ app, url } = await createGatewayApp(library, upstream.url));
    ledger = app.get(Ledger);
    listen(app);
    client = await connect();
  });

  afterAll(async () => {
    await closeAll(client, app, upstream);
  });

  it('@Timeout reaches the client as the exception event { status: 503, code: timeout }; the event names the gateway message', async () => {
    const answer = await client.call('quote.slow');
    expect(answer).toEqual({ exception: expect.objectContaining({ status: 503, code: 'timeout', message: expect.any(String), detail: expect.any(String) }) });
    const timeout = events.find((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout');
    expect(timeout).toMatchObject({ contextType: 'ws', operation: 'quote.slow', attributes: { 'network.protocol.name': 'websocket', 'websocket.event': 'quote.slow', 'websocket.library': library } });
    expect(timeout).not.toHaveProperty('route');
  });

  it('an open breaker answers circuit_open with retryAfterMs, without running the handler', async () => {
    await client.call('quote.fragile');
    const runs = ledger.runsOf('fragile');
    const answer = await client.call('quote.fragile');
    expect(answer).toEqual({ exception: expect.objectContaining({ status: 503, code: 'circuit_open', retryAfterMs: expect.any(Number) }) });
    expect(ledger.runsOf('fragile')).toBe(runs);
  });

  it('@Retryable retries, then the client gets a typed error with a retry hint', async () => {
    const answer = await client.call('quote.flaky');
    expect(ledger.runsOf('flaky')).toBe(3);
    expect(answer).toEqual({ exception: expect.objectContaining({ status: 503, code: expect.stringMatching(/^(retries_exhausted|upstream_unavailable)$/), retryAfterMs: expect.any(Number) }) });
  });

  it('@Fallback answers the message when every attempt failed', async () => {
    expect(await client.call('quote.degraded')).toEqual({ value: 'cached' });
    expect(ledger.runsOf('degraded')).toBe(2);
  });

  it('@Idempotent({ key: (data) => data.orderId }): duplicates, sequential and concurrent, run the handler once and get its answer', async () => {
    const first = await client.call('order.place', { orderId: 'o-1', amount: 5 });
    const again = await client.call('order.place', { orderId: 'o-1', amount: 5 });
    expect(first).toEqual({ value: { orderId: 'o-1', n: 1 } });
    expect(again).toEqual(first);
    const concurrent = await Promise.all([1, 2, 3].map(() => client.call('order.place', { orderId: 'o-2', amount: 5 })));
    expect(concurrent).toEqual([1, 2, 3].map(() => ({ value: { orderId: 'o-2', n: 1 } })));
    expect(ledger.runsOf('place:o-1')).toBe(1);
    expect(ledger.runsOf('place:o-2')).toBe(1);
  });

  it('the same key with another payload is refused as idempotency_key_reused (422)', async () => {
    await client.call('order.place', { orderId: 'o-3', amount: 5 });
    const answer = await client.call('order.place', { orderId: 'o-3', amount: 6 });
    expect(answer).toEqual({ exception: expect.objectContaining({ status: 422, code: 'idempotency_key_reused' }) });
    expect(ledger.runsOf('place:o-3')).toBe(1);
  });

  it("a decorated handler calling a decorated service whose circuit is open answers the typed exception event", async () => {
    await client.call('stock.reserve');
    const answer = await client.call('stock.reserve');
    expect(answer).toEqual({ exception: expect.objectContaining({ status: 503, code: 'circuit_open', retryAfterMs: expect.any(Number) }) });
  });

  it("a client that disconnects aborts its messages' work", async () => {
    const leaving = await connect();
    void leaving.call('report.build', { id: `b-${library}` });
    await expect.poll(() => ledger.runsOf(`build:b-${library}`), { timeout: 5_000 }).toBe(1);
    await leaving.close();
    await expect.poll(() => ledger.aborted, { timeout: 5_000 }).toContain(`b-${library}`);
  });
});
