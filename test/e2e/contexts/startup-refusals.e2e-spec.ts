import 'reflect-metadata';
import { Controller, Injectable, type Type } from '@nestjs/common';
import { Query, ResolveField, Resolver, Subscription } from '@nestjs/graphql';
import { ClientProxyFactory, MessagePattern, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { Idempotent, ResilienceModule, Timeout } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/postgres.mjs';

// A guarantee that cannot hold in a handler's context is refused when the application starts,
// with a sentence naming the handler and the fix: @Idempotent() where nothing reads a key would
// silently run duplicates (the issue found it doing exactly that on a BullMQ processor).

/** Starts an application with `providers` (and `controllers`); resolves to the start-up error's message. */
async function startFailure(providers: Type<unknown>[], controllers: Type<unknown>[] = []): Promise<string> {
  const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], providers, controllers }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
  } catch (error) {
    return (error as Error).message;
  } finally {
    await app.close().catch(() => undefined);
  }
  throw new Error('the application started');
}

@Injectable()
class ReportsService {
  @Idempotent()
  async generate(id: string): Promise<string> {
    return id;
  }
}

@Injectable()
class SyncReportsService {
  @Idempotent({ key: (id: string) => id })
  generate(id: string): string {
    return id;
  }
}

@Resolver()
class ReportQueryResolver {
  @Query(() => String)
  @Idempotent()
  async report(): Promise<string> {
    return 'r-1';
  }
}

@Resolver('Report')
class ReportFieldResolver {
  @ResolveField(() => String)
  @Idempotent({ key: (args: { id: string }) => args.id })
  async owner(): Promise<string> {
    return 'ann';
  }
}

@Resolver()
class ReportSubscriptionResolver {
  @Subscription(() => String)
  @Timeout(1_000)
  reportReady(): AsyncIterator<string> {
    return (async function* () {})();
  }
}

@WebSocketGateway()
class ReportsGateway {
  @SubscribeMessage('report.create')
  @Idempotent()
  async create(): Promise<string> {
    return 'r-1';
  }
}

@WebSocketGateway()
class ReportsResolverKeyGateway {
  @SubscribeMessage('report.create')
  @Idempotent({ keyResolver: (request: { headers: Record<string, string> }) => request.headers['idempotency-key'] })
  async create(): Promise<string> {
    return 'r-1';
  }
}

describe('start-up refusals of decorators that cannot hold in their context', () => {
  it('refuses @Idempotent() without key on a plain provider method (no request carries a key there), naming it and the fix', async () => {
    const message = await startFailure([ReportsService]);
    expect(message).toMatch(/@Idempotent\(\) on ReportsService\.generate \(a provider method\) has no key/);
    expect(message).toMatch(/Give it key: \(\.\.\.args\) => …/);
  });

  it('refuses @Idempotent({ key }) on a synchronous provider method (its callers would get a Promise)', async () => {
    const message = await startFailure([SyncReportsService]);
    expect(message).toMatch(/SyncReportsService\.generate/);
    expect(message).toMatch(/Make the method async/);
  });

  it('refuses @Idempotent() on a GraphQL query: only a mutation changes state', async () => {
    const message = await startFailure([ReportQueryResolver]);
    expect(message).toMatch(/@Idempotent\(\) on ReportQueryResolver\.report \(a GraphQL query\) cannot hold/);
    expect(message).toMatch(/Put @Idempotent\(\) on the @Mutation\(\) that makes the change/);
  });

  it('refuses @Idempotent() on a GraphQL field resolver', async () => {
    const message = await startFailure([ReportFieldResolver]);
    expect(message).toMatch(/@Idempotent\(\) on ReportFieldResolver\.owner \(a GraphQL field resolver\) cannot hold/);
  });

  it('refuses a resilience decorator on a GraphQL subscription, which has no single call to apply to', async () => {
    const message = await startFailure([ReportSubscriptionResolver]);
    expect(message).toMatch(/ReportSubscriptionResolver\.reportReady is a GraphQL subscription with a resilience decorator/);
    expect(message).toMatch(/Decorate the service method that produces each event instead/);
  });

  it('refuses @Idempotent() without a key function on a WebSocket gateway handler: a message has no Idempotency-Key header', async () => {
    const message = await startFailure([ReportsGateway]);
    expect(message).toMatch(/@Idempotent\(\) on ReportsGateway\.create \(a WebSocket message handler\) has no key to read/);
    expect(message).toMatch(/@Idempotent\(\{ key: \(data, client\) => data\.requestId \}\)/);
  });

  it('refuses keyResolver (it reads an HTTP request) on a WebSocket gateway handler', async () => {
    const message = await startFailure([ReportsResolverKeyGateway]);
    expect(message).toMatch(/ReportsResolverKeyGateway\.create .* and keyResolver reads an HTTP request/);
  });

  it('starts a microservice whose message handlers carry @Idempotent() and @Timeout(), sync ones included (Nest awaits whatever a handler returns)', async () => {
    @Controller()
    class SyncHandlers {
      @MessagePattern('sum')
      @Timeout(1_000)
      sum(data: number[]): number {
        return data.reduce((a, b) => a + b, 0);
      }

      @MessagePattern('charge')
      @Idempotent({ key: (data: { id: string }) => data.id })
      charge(data: { id: string }): string {
        return data.id;
      }
    }
    const port = await freePort();
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [SyncHandlers] }).compile();
    const app = moduleRef.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port }, logger: false });
    await app.listen();
    const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    try {
      expect(await firstValueFrom(client.send('sum', [1, 2, 3]))).toBe(6);
      expect(await firstValueFrom(client.send('charge', { id: 'c-1' }))).toBe('c-1');
      expect(await firstValueFrom(client.send('charge', { id: 'c-1' }))).toBe('c-1');
    } finally {
      await client.close();
      await app.close();
    }
  });
});
