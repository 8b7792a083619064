// The same POST /orders route under @node-idempotency/nestjs (the peer this benchmark compares
// against), with its in-memory or its Redis storage adapter. The peer is installed in
// bench/idempotency/peer only (run.ts installs it on first use); it is never a dependency of ours.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Body, Controller, HttpCode, Module, Post, type DynamicModule } from '@nestjs/common';
import { packageRoot } from '../shared/report.js';

/** Where the peer is installed. */
export const PEER_DIR = join(packageRoot(), 'bench', 'idempotency', 'peer');

interface NodeIdempotencyNest {
  NodeIdempotencyModule: { forRootAsync(options: unknown): DynamicModule };
  Idempotent(options?: unknown): MethodDecorator;
}

// resolved from the peer folder; its own imports of @nestjs/* and rxjs walk up to the root's copies,
// so it runs on the same Nest instance as the app
const peer = createRequire(join(PEER_DIR, 'package.json'))('@node-idempotency/nestjs') as NodeIdempotencyNest;

interface OrderBody {
  item: string;
  qty: number;
}

let nextOrderId = 1;

@Controller('orders')
class PeerOrdersController {
  @Post()
  @HttpCode(201)
  @peer.Idempotent()
  create(@Body() body: OrderBody) {
    return { id: nextOrderId++, item: body.item, qty: body.qty, status: 'created' };
  }
}

@Module({})
class PeerBenchModule {}

/** The benchmark app on @node-idempotency/nestjs: `memory`, or `redis` at `redisUrl`. */
export function nodeIdempotencyModule(adapter: 'memory' | 'redis', redisUrl?: string): DynamicModule {
  return {
    module: PeerBenchModule,
    imports: [peer.NodeIdempotencyModule.forRootAsync({ storage: { adapter, ...(adapter === 'redis' ? { options: { url: redisUrl } } : {}) } })],
    controllers: [PeerOrdersController],
  };
}
