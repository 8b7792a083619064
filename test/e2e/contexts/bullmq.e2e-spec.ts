import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import { BullModule, Processor, WorkerHost } from '@nestjs/bullmq';
import { Test } from '@nestjs/testing';
import { Job, Queue } from 'bullmq';
import { CircuitBreaker, Idempotent, ResilienceEvents, ResilienceModule, Retryable, type ResilienceEvent } from 'nest-resilience';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../idempotency/support.js';
import { Ledger } from './support.js';
import { hasRedis, redisUrl, testKeyPrefix } from '../../support/redis.js';

const prefix = testKeyPrefix('bullmq').replace(/:$/, '');
const names = {
  orders: 'orders',
  flaky: 'flaky',
  refused: 'refused',
  throttled: 'throttled',
  breaker: 'breaker',
  plain: 'plain',
} as const;

/** What the processors did: runs per key, and the breaker's dependency. */
@Injectable()
class Effects extends Ledger {
  /** Whether the breaker's dependency is down. */
  dependencyDown = true;
  /** When each breaker job ran (ms since the epoch). */
  readonly breakerRuns: number[] = [];
}

/** An HTTP-like failure of a dependency (status, optional Retry-After). */
function dependencyError(status: number, retryAfterSeconds?: number): Error {
  return Object.assign(new Error(`dependency answered ${status}`), {
    status,
    ...(retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(retryAfterSeconds) } }),
  });
}

interface OrderJob {
  readonly orderId: string;
  readonly holdMs?: number;
}

@Processor(names.orders, { concurrency: 4 })
@Idempotent({ key: (job: Job<OrderJob>) => job.data.orderId })
class OrdersProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  async process(job: Job<OrderJob>): Promise<unknown> {
    const n = this.effects.run(job.data.orderId);
    await sleep(job.data.holdMs ?? 20);
    return { orderId: job.data.orderId, n };
  }
}

/** Keyed by the job's id (the default). */
@Processor(names.plain)
@Idempotent()
class PlainProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  async process(job: Job<OrderJob>): Promise<unknown> {
    return { n: this.effects.run(`plain:${job.id}`) };
  }
}

@Processor(names.flaky)
class FlakyProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async process(job: Job<OrderJob>): Promise<unknown> {
    this.effects.run(`flaky:${job.data.orderId}`);
    throw dependencyError(503);
  }
}

@Processor(names.refused)
class RefusedProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async process(job: Job<OrderJob>): Promise<unknown> {
    this.effects.run(`refused:${job.data.orderId}`);
    throw dependencyError(422);
  }
}

/** No library retries: a 429 with Retry-After delays the job by the hint. */
@Processor(names.throttled)
class ThrottledProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 100 } })
  async process(job: Job<OrderJob>): Promise<unknown> {
    const n = this.effects.run(`throttled:${job.data.orderId}`);
    if (n === 1) throw dependencyError(429, 1);
    return { n, at: Date.now() };
  }
}

@Processor(names.breaker)
class BreakerProcessor extends WorkerHost {
  constructor(private readonly effects: Effects) {
    super();
  }

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 1_500 })
  async process(job: Job<OrderJob>): Promise<unknown> {
    this.effects.breakerRuns.push(Date.now());
    this.effects.run(`breaker:${job.data.orderId}`);
    if (this.effects.dependencyDown) throw dependencyError(503);
    return { ok: true };
  }
}

describe.skipIf(!hasRedis)('BullMQ processors: jobs settle as BullMQ expects, idempotent jobs run once, an open breaker pauses the worker', () => {
  let app: INestApplicationContext;
  let effects: Effects;
  const queues = new Map<string, Queue>();
  const events: ResilienceEvent[] = [];

  const queue = (name: keyof typeof names): Queue => queues.get(names[name])!;

  beforeAll(async () => {
    const connection = { url: redisUrl };
    const moduleRef = await Test.createTestingModule({
      imports: [
        BullModule.forRoot({ connection, prefix }),
        ...Object.values(names).map((name) => BullModule.registerQueue({ name })),
        ResilienceModule.forRoot(),
      ],
      providers: [Effects, OrdersProcessor, PlainProcessor, FlakyProcessor, RefusedProcessor, ThrottledProcessor, BreakerProcessor],
    }).compile();
    app = moduleRef;
    await app.init();
    effects = app.get(Effects);
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    for (const name of Object.values(names)) queues.set(name, new Queue(name, { connection, prefix }));
  });

  afterAll(async () => {
    await Promise.all([...queues.values()].map((q) => q.close()));
    await app?.close();
  });

  async function settled(job: Job): Promise<Job> {
    await until(async () => {
      const state = await job.getState();
      return state === 'completed' || state === 'failed';
    }, 15_000);
    // read after the state: a job read while active has no return value yet
    return (await Job.fromId(queues.get(job.queueName)!, job.id!))!;
  }

  it('duplicate jobs of one key (sequential, then concurrent) run the processor once; each completes with the stored value', async () => {
    const first = await queue('orders').add('place', { orderId: 'o-1' });
    const firstDone = await settled(first);
    expect(firstDone.failedReason).toBeUndefined();
    expect(firstDone.returnvalue).toEqual({ orderId: 'o-1', n: 1 });
    const again = await settled(await queue('orders').add('place', { orderId: 'o-1' }));
    expect(again.returnvalue).toEqual({ orderId: 'o-1', n: 1 });
    expect(effects.runsOf('o-1')).toBe(1);

    const burst = await Promise.all([1, 2, 3, 4].map(() => queue('orders').add('place', { orderId: 'o-2', holdMs: 300 })));
    const done = await Promise.all(burst.map(settled));
    expect(done.map((job) => job.finishedOn !== undefined && job.failedReason === undefined)).toEqual([true, true, true, true]);
    expect(done.map((job) => job.returnvalue)).toEqual(Array(4).fill({ orderId: 'o-2', n: 1 }));
    expect(effects.runsOf('o-2')).toBe(1);
    const info = events.find((event) => event.event === 'idempotency_replayed');
    expect(info).toMatchObject({ contextType: 'job', operation: names.orders });
  });

  it('keys a job by its id by default: the same job id added again after completion is not run again', async () => {
    const job = await queue('plain').add('once', { orderId: 'p' }, { jobId: 'fixed-id', removeOnComplete: true });
    await until(() => effects.runsOf('plain:fixed-id') === 1, 10_000);
    await until(async () => (await Job.fromId(queue('plain'), 'fixed-id')) === undefined, 10_000);
    const again = await queue('plain').add('once', { orderId: 'p' }, { jobId: 'fixed-id' });
    expect(again.id).toBe(job.id);
    const done = await settled(again);
    expect(done.returnvalue).toEqual({ n: 1 });
    expect(effects.runsOf('plain:fixed-id')).toBe(1);
  });

  it('@Retryable({ maxAttempts: 3 }) on an always-503 dependency runs the processor 3 times, not 3 × the queue attempts: then fails for good', async () => {
    const job = await queue('flaky').add('charge', { orderId: 'f-1' }, { attempts: 3, backoff: { type: 'fixed', delay: 50 } });
    const done = await settled(job);
    expect(await done.getState()).toBe('failed');
    expect(effects.runsOf('flaky:f-1')).toBe(3);
    expect(done.failedReason).toMatch(/^upstream_unavailable: /);
    await sleep(300);
    expect(effects.runsOf('flaky:f-1')).toBe(3);
  });

  it('a non-transient failure (422) fails the job at once, without the queue attempts or the library retries', async () => {
    const done = await settled(await queue('refused').add('charge', { orderId: 'r-1' }, { attempts: 3 }));
    expect(await done.getState()).toBe('failed');
    expect(done.failedReason).toMatch(/^upstream_rejected: /);
    await sleep(200);
    expect(effects.runsOf('refused:r-1')).toBe(1);
  });

  it('a 429 with Retry-After: 1 moves the job to delayed for 1 s (not active in the worker), then it runs again and completes', async () => {
    const job = await queue('throttled').add('call', { orderId: 't-1' }, { attempts: 2 });
    await until(() => effects.runsOf('throttled:t-1') === 1, 10_000);
    const failedAt = Date.now();
    await until(async () => (await job.getState()) === 'delayed', 5_000);
    const done = await settled(job);
    expect(await done.getState()).toBe('completed');
    expect(effects.runsOf('throttled:t-1')).toBe(2);
    const { at } = done.returnvalue as { at: number };
    expect(at - failedAt).toBeGreaterThanOrEqual(900);
  });

  it('an open breaker pauses the worker until it half-opens: queued jobs wait instead of burning their attempts, then succeed', async () => {
    const opening = await Promise.all([1, 2].map((i) => queue('breaker').add('call', { orderId: `b-${i}` }, { attempts: 1 })));
    // the two failures open the breaker (the handler's own errors: the queue's attempts apply)
    await Promise.all(opening.map(settled));
    const openedAt = Date.now();
    // a job meeting the open circuit pauses the worker and is delayed, attempts intact
    const waiting = await Promise.all([3, 4, 5].map((i) => queue('breaker').add('call', { orderId: `b-${i}` }, { attempts: 1 })));
    const worker = app.get(BreakerProcessor).worker;
    await until(() => worker.isPaused(), 5_000);
    effects.dependencyDown = false;
    const done = await Promise.all(waiting.map(settled));
    expect(await Promise.all(done.map((job) => job.getState()))).toEqual(['completed', 'completed', 'completed']);
    // nothing ran while the circuit was open
    const runsWhileOpen = effects.breakerRuns.filter((at) => at > openedAt + 100 && at < openedAt + 1_300);
    expect(runsWhileOpen).toEqual([]);
    expect(worker.isPaused()).toBe(false);
    expect(events.some((event) => event.event === 'breaker_rejected' && event.contextType === 'job')).toBe(true);
  });
});
