import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, GraphQLModule, Mutation, Query, Resolver } from '@nestjs/graphql';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { Idempotent, ResilienceModule, currentIdempotencyContext } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createStore, storeKinds, type StoreUnderTest } from '../idempotency/stores.js';
import { Ledger } from './support.js';

// The same store contract as HTTP for an idempotent GraphQL mutation and gateway message, on
// every store that can run here (memory, SQLite, and PostgreSQL / Redis when their URLs are set):
// one run per key, sequential and concurrent duplicates, the fencing token of the claim.

@Resolver()
class TransfersResolver {
  constructor(private readonly effects: Ledger) {}

  @Query()
  ping(): string {
    return 'pong';
  }

  @Mutation()
  @Idempotent()
  async transfer(@Args('amount') amount: number): Promise<{ amount: number; n: number; fence: number }> {
    const n = this.effects.run(`transfer:${amount}`);
    await sleep(100);
    return { amount, n, fence: currentIdempotencyContext()!.fence };
  }
}

@WebSocketGateway()
class TransfersGateway {
  constructor(private readonly effects: Ledger) {}

  @SubscribeMessage('transfer')
  @Idempotent({ key: (data: { transferId: string }) => data.transferId })
  async transfer(@MessageBody() data: { transferId: string }): Promise<{ transferId: string; n: number }> {
    const n = this.effects.run(`ws:${data.transferId}`);
    await sleep(100);
    return { transferId: data.transferId, n };
  }
}

const typeDefs = `
  type Transfer { amount: Int!, n: Int!, fence: Int! }
  type Query { ping: String }
  type Mutation { transfer(amount: Int!): Transfer! }
`;

/** Sends `count` messages at once on one `ws` connection; resolves to the answers. */
async function sendWs(url: string, data: unknown, count: number): Promise<unknown[]> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const answers: unknown[] = [];
  const done = new Promise<void>((resolve) => {
    socket.on('message', (raw) => {
      answers.push(JSON.parse(String(raw)));
      if (answers.length === count) resolve();
    });
  });
  for (let i = 0; i < count; i++) socket.send(JSON.stringify({ event: 'transfer', data }));
  await done;
  socket.close();
  return answers;
}

describe.each(storeKinds)('@Idempotent GraphQL mutations and gateway messages on the %s store', (kind) => {
  let store: StoreUnderTest;
  let app: INestApplication;
  let url: string;
  let effects: Ledger;

  beforeAll(async () => {
    store = await createStore(kind);
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot({ idempotency: { store: store.store } }), GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs })],
      providers: [TransfersResolver, TransfersGateway, Ledger],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.useWebSocketAdapter(new WsAdapter(app));
    await app.listen(0, '127.0.0.1');
    url = `ws://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    effects = app.get(Ledger);
  });

  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const mutate = (amount: number, key: string) =>
    request(app.getHttpServer()).post('/graphql').set('idempotency-key', key).send({ query: `mutation { transfer(amount: ${amount}) { amount n fence } }` });

  it('a mutation runs once per key; its duplicates, sequential or concurrent, get the stored data or a 409 while it runs', async () => {
    const [first, ...concurrent] = await Promise.all([mutate(7, `${kind}-t7`), mutate(7, `${kind}-t7`), mutate(7, `${kind}-t7`)]);
    const later = await mutate(7, `${kind}-t7`);
    expect(effects.runsOf('transfer:7')).toBe(1);
    const data = [first, ...concurrent, later].filter((answer) => answer.body.data?.transfer).map((answer) => answer.body.data.transfer);
    expect(data.length).toBeGreaterThanOrEqual(2);
    for (const one of data) expect(one).toEqual({ amount: 7, n: 1, fence: 1 });
    for (const refused of [first, ...concurrent].filter((answer) => answer.body.errors)) {
      expect(refused.body.errors[0].extensions).toMatchObject({ code: 'idempotency_request_in_progress', http: { status: 409 } });
    }
  });

  it('concurrent duplicates of a gateway message run the handler once and all get its answer', async () => {
    const answers = await sendWs(url, { transferId: `${kind}-w1` }, 3);
    expect(answers).toEqual([1, 2, 3].map(() => ({ transferId: `${kind}-w1`, n: 1 })));
    expect(await sendWs(url, { transferId: `${kind}-w1` }, 1)).toEqual([{ transferId: `${kind}-w1`, n: 1 }]);
    expect(effects.runsOf(`ws:${kind}-w1`)).toBe(1);
  });
});
