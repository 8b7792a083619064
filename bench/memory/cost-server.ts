// The server of bench/memory/store-cost.ts: POST /orders, @Idempotent() on the in-memory store of
// the library at BENCH_LIBRARY (this build's dist, or an older build's, to compare), started under
// callgrind by the runner. BENCH_MAX_RECORDS sets the store's maxRecords (builds without the option
// ignore it).
import 'reflect-metadata';
import { Body, Controller, Module, Post, type DynamicModule } from '@nestjs/common';
import { pathToFileURL } from 'node:url';
import { platformFromEnv, serveBenchApp } from '../shared/server-harness.js';

type Library = typeof import('nest-resilience');

serveBenchApp(platformFromEnv(), async () => {
  const library = (await import(process.env.BENCH_LIBRARY ? pathToFileURL(process.env.BENCH_LIBRARY).href : 'nest-resilience')) as Library;
  const maxRecords = process.env.BENCH_MAX_RECORDS ? Number(process.env.BENCH_MAX_RECORDS) : undefined;
  let nextId = 1;

  @Controller('orders')
  class OrdersController {
    @Post()
    @library.Idempotent()
    create(@Body() body: { item: string; qty: number }) {
      return { id: nextId++, item: body.item, qty: body.qty, status: 'created' };
    }
  }

  @Module({})
  class CostModule {
    static create(): DynamicModule {
      const store = new library.InMemoryIdempotencyStore(maxRecords === undefined ? {} : ({ maxRecords } as object));
      return { module: CostModule, imports: [library.ResilienceModule.forRoot({ idempotency: { store } })], controllers: [OrdersController] };
    }
  }
  return { module: CostModule.create() };
});
