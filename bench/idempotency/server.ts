// One idempotency-benchmark server: POST /orders bare, or @Idempotent() on one store, one platform.
// Started by run.ts with BENCH_PLATFORM, BENCH_STORE (and BENCH_SQLITE_FILE / BENCH_PG_URL).
import 'reflect-metadata';
import { Body, Controller, Module, Post, type DynamicModule, type Type } from '@nestjs/common';
import { Idempotent, InMemoryIdempotencyStore, ResilienceModule, type IdempotencyStore } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import pg from 'pg';
import { DataSource, type DataSourceOptions, type Logger as TypeOrmLogger } from 'typeorm';
import { platformFromEnv, serveBenchApp, type ChildHandlers } from '../shared/server-harness.js';
import { IDEMPOTENCY_STORES, type IdempotencyStoreKind, type RoundTripRecording } from './stores.js';

interface OrderBody {
  item: string;
  qty: number;
}

let nextOrderId = 1;
function createOrder(body: OrderBody) {
  return { id: nextOrderId++, item: body.item, qty: body.qty, status: 'created' };
}

@Controller('orders')
class BareOrdersController {
  @Post()
  create(@Body() body: OrderBody) {
    return createOrder(body);
  }
}

@Controller('orders')
class IdempotentOrdersController {
  @Post()
  @Idempotent()
  create(@Body() body: OrderBody) {
    return createOrder(body);
  }
}

/** Records what reaches the database, but only between `counters.start` and `counters.stop`. */
class RoundTripRecorder implements TypeOrmLogger {
  recording = false;
  statements: string[] = [];
  wireQueries = 0;
  storeOperations: string[] = [];

  start(): void {
    this.statements = [];
    this.storeOperations = [];
    this.wireQueries = 0;
    this.recording = true;
  }

  stop(wire: boolean): RoundTripRecording {
    this.recording = false;
    return { statements: this.statements, wireQueries: wire ? this.wireQueries : null, storeOperations: this.storeOperations };
  }

  logQuery(query: string): void {
    if (this.recording) this.statements.push(query.trim().split('\n')[0].slice(0, 80));
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

const recorder = new RoundTripRecorder();

/** Counts queries at the PostgreSQL wire (every `pg.Client#query`, whoever sends it). */
function countPostgresWireQueries(): void {
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (recorder.recording) recorder.wireQueries++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
}

async function openDataSource(kind: 'sqlite' | 'postgres'): Promise<DataSource> {
  const common = { entities: [IdempotencyRecord], logger: recorder };
  const options: DataSourceOptions =
    kind === 'sqlite'
      ? { ...common, type: 'better-sqlite3', database: requiredEnv('BENCH_SQLITE_FILE'), enableWAL: true, timeout: 5_000, synchronize: true }
      : // the parent created the schema once: both platforms' servers share the table
        { ...common, type: 'postgres', url: requiredEnv('BENCH_PG_URL'), poolSize: 10, connectTimeoutMS: 2_000, synchronize: false };
  return new DataSource(options).initialize();
}

@Module({})
class IdempotencyBenchModule {
  static create(controller: Type, store?: IdempotencyStore): DynamicModule {
    return {
      module: IdempotencyBenchModule,
      imports: [ResilienceModule.forRoot(store ? { idempotency: { store } } : {})],
      controllers: [controller],
    };
  }
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; start this server through bench/idempotency/run.js.`);
  return value;
}

const kind = process.env.BENCH_STORE as IdempotencyStoreKind;
if (!IDEMPOTENCY_STORES.includes(kind)) throw new Error(`BENCH_STORE must be one of ${IDEMPOTENCY_STORES.join(', ')} (got "${kind}").`);

serveBenchApp(platformFromEnv(), async () => {
  if (kind === 'bare') return { module: IdempotencyBenchModule.create(BareOrdersController) };
  if (kind === 'memory') return { module: IdempotencyBenchModule.create(IdempotentOrdersController, new InMemoryIdempotencyStore()) };
  if (kind === 'nip-memory' || kind === 'nip-redis') {
    // loaded only here: the peer is installed in its own folder
    const { nodeIdempotencyModule } = await import('./node-idempotency.js');
    return { module: nodeIdempotencyModule(kind === 'nip-memory' ? 'memory' : 'redis', kind === 'nip-redis' ? requiredEnv('BENCH_REDIS_URL') : undefined) };
  }
  if (kind === 'redis' || kind === 'redis-node') {
    const { RedisIdempotencyStore } = await import('nest-resilience/redis');
    const keyPrefix = `bench:${process.pid}:`;
    if (kind === 'redis') return { module: IdempotencyBenchModule.create(IdempotentOrdersController, new RedisIdempotencyStore({ url: requiredEnv('BENCH_REDIS_URL'), keyPrefix })) };
    // the app's own node-redis client, set up as the README advises (no offline queue)
    const { createClient } = await import('redis');
    const client = await createClient({ url: requiredEnv('BENCH_REDIS_URL'), disableOfflineQueue: true }).connect();
    return {
      module: IdempotencyBenchModule.create(IdempotentOrdersController, new RedisIdempotencyStore({ client, keyPrefix })),
      close: () => client.close(),
    };
  }
  if (kind === 'postgres') countPostgresWireQueries();
  const dataSource = await openDataSource(kind);
  const store = new TypeOrmIdempotencyStore(dataSource, {
    onQuery: (event) => {
      if (recorder.recording) recorder.storeOperations.push(event.operation);
    },
  });
  const handlers: ChildHandlers = {
    'counters.start': () => recorder.start(),
    'counters.stop': () => recorder.stop(kind === 'postgres'),
  };
  return {
    module: IdempotencyBenchModule.create(IdempotentOrdersController, store),
    handlers,
    close: () => dataSource.destroy(),
  };
});
