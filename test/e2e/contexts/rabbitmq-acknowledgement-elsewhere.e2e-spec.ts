import 'reflect-metadata';
import { BadRequestException, Controller, Param, Post, UseInterceptors, type INestApplication, type INestMicroservice } from '@nestjs/common';
import { ClientProxyFactory, MessagePattern, Payload, RpcException, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { Idempotent, RabbitMqAcknowledgement, ResilienceModule, isResilienceConfigError, type RabbitMqAcknowledgementOptions } from 'nest-resilience';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/postgres.mjs';

// RabbitMqAcknowledgement applied where there is no RabbitMQ message (an HTTP route, a TCP message
// handler, with @Idempotent() inside it): it does nothing, every answer and error is unchanged.

let runs = 0;

@Controller('orders')
@UseInterceptors(RabbitMqAcknowledgement)
class OrdersController {
  @Post(':id')
  @Idempotent()
  find(@Param('id') id: string): unknown {
    if (id === 'bad') throw new BadRequestException('bad id');
    return { id, n: ++runs };
  }

  @MessagePattern('order.find')
  @Idempotent({ key: (data: { id: string }) => data.id })
  findByMessage(@Payload() data: { id: string }): unknown {
    if (data.id === 'bad') throw new RpcException({ status: 400, code: 'bad_id', message: 'bad id' });
    return { id: data.id, n: ++runs };
  }
}

describe('RabbitMqAcknowledgement outside RabbitMQ: a no-op', () => {
  let http: INestApplication;
  let tcp: INestMicroservice;
  let client: ClientProxy;
  let base: string;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [OrdersController] }).compile();
    http = moduleRef.createNestApplication({ logger: false });
    await http.listen(0, '127.0.0.1');
    base = (await http.getUrl()).replace('[::1]', '127.0.0.1');
    const port = await freePort();
    const rpcModule = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [OrdersController] }).compile();
    tcp = rpcModule.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port }, logger: false });
    await tcp.listen();
    client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
  });

  afterAll(async () => {
    await client?.close();
    await tcp?.close();
    await http?.close();
  });

  it('on an HTTP route: the answer, its idempotent replay and an HttpException pass unchanged', async () => {
    const post = (id: string) => fetch(`${base}/orders/${id}`, { method: 'POST', headers: { 'idempotency-key': `key-${id}` } });
    const first = await (await post('o-1')).json();
    const again = await post('o-1');
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(first);
    const bad = await post('bad');
    expect(bad.status).toBe(400);
  });

  it('on a TCP message handler: the answer, its idempotent replay and an RpcException pass unchanged', async () => {
    const first = await firstValueFrom(client.send('order.find', { id: 'm-1' }));
    expect(await firstValueFrom(client.send('order.find', { id: 'm-1' }))).toEqual(first);
    await expect(firstValueFrom(client.send('order.find', { id: 'bad' }))).rejects.toMatchObject({ status: 400, code: 'bad_id' });
  });

  it('refuses options it cannot honour, naming the fix', () => {
    for (const options of [{ onTransientFailure: 'retry' }, { maxRequeueDelayMs: -1 }, { maxRequeueDelayMs: Number.NaN }] as unknown as RabbitMqAcknowledgementOptions[]) {
      let thrown: unknown;
      try {
        new RabbitMqAcknowledgement(options);
      } catch (error) {
        thrown = error;
      }
      expect(isResilienceConfigError(thrown)).toBe(true);
    }
  });
});
