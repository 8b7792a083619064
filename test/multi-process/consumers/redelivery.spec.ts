import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import amqp from 'amqplib';
import { Queue } from 'bullmq';
import { IdempotencyRecord } from 'nest-resilience/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsumerEffect } from '../../fixtures/consumers/consumer.entities.js';
import { requireBuilt, spawnApp, type SpawnedApp } from '../../fixtures/spawn-app.js';
import { until } from '../../e2e/idempotency/support.js';
import { hasNats, natsUrl } from '../../support/nats.js';
import { createTestDatabase, hasPostgres } from '../../support/postgres.js';
import { amqpUrl, hasRabbitMq, rabbitMqName } from '../../support/rabbitmq.js';
import { hasRedis, redisUrl } from '../../support/redis.js';

// Two consumer processes on one queue; the first is killed (SIGKILL) inside its handler, after it
// wrote its row in the idempotent execution's transaction; the broker redelivers the message to
// the second, which writes the one row. Then N duplicates, sequential and concurrent, spread over
// two live processes: still one row per key. Counted in PostgreSQL.

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CONSUMER_APP = 'build/test/fixtures/consumers/consumer.app.js';
const builtFrom: Array<[string, string]> = [
  [`${root}${CONSUMER_APP}`, `${root}test/fixtures/consumers/consumer.app.ts`],
  [`${root}dist/engine/resilience-engine.js`, `${root}lib/engine/resilience-engine.ts`],
  [`${root}dist/contexts/job.context.js`, `${root}lib/contexts/job.context.ts`],
  [`${root}dist/contexts/rpc.context.js`, `${root}lib/contexts/rpc.context.ts`],
  [`${root}dist/contexts/rabbitmq-acknowledgement.interceptor.js`, `${root}lib/contexts/rabbitmq-acknowledgement.interceptor.ts`],
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Broker {
  /** Environment of every consumer process. */
  readonly env: Record<string, string>;
  /** Sends one message or job for `reportId`; `duplicateOf` sends it again as a new delivery of the same key. */
  send(reportId: string, copy: number): Promise<void>;
  /** Resolves once the broker has nothing left to deliver or in flight. */
  drained(): Promise<void>;
  /** Messages the broker still holds once every consumer process is gone (never acknowledged), where it can tell. */
  leftOver?(): Promise<number>;
  close(): Promise<void>;
}

async function jetStreamBroker(): Promise<Broker> {
  const id = randomBytes(4).toString('hex');
  const stream = `reports_${id}`;
  const subject = `${stream}.ready`;
  const durable = `consumers_${id}`;
  const nc: NatsConnection = await connect({ servers: natsUrl! });
  const jsm = await jetstreamManager(nc);
  // the consumer processes create the stream with a 100 ms duplicate window: a copy sent later is a new delivery of the same Nats-Msg-Id
  await jsm.streams.add({ name: stream, subjects: [subject], duplicate_window: 100_000_000 });
  // JetStream drops a copy published within the duplicate window: copies go out one by one, past it
  let previous: Promise<void> = Promise.resolve();
  return {
    env: { CONSUMER: 'jetstream', NATS_URL: natsUrl!, STREAM: stream, SUBJECT: subject, DURABLE: durable, ACK_WAIT_MS: '1000' },
    // every copy carries the same Nats-Msg-Id, the default key
    send: (reportId) =>
      (previous = previous.then(async () => {
        await sleep(150);
        await jetstream(nc).publish(subject, JSON.stringify({ reportId }), { msgID: `msg-${reportId}` });
      })),
    drained: () =>
      until(async () => {
        const info = await jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 20_000, 'every message acknowledged'),
    close: async () => {
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.drain();
    },
  };
}

async function rabbitMqBroker(): Promise<Broker> {
  const queue = rabbitMqName('reports');
  const pattern = 'reports.ready';
  const connection = await amqp.connect(amqpUrl!);
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  return {
    env: { CONSUMER: 'rmq', AMQP_URL: amqpUrl!, QUEUE: queue, SUBJECT: pattern },
    // Nest's RMQ packet, persistent; every copy carries the same AMQP messageId, the default key
    send: async (reportId) => {
      channel.sendToQueue(queue, Buffer.from(JSON.stringify({ pattern, data: { reportId } })), { messageId: `msg-${reportId}`, persistent: true });
      await channel.waitForConfirms();
    },
    // nothing ready (AMQP does not count the unacknowledged ones: see leftOver)
    drained: () => until(async () => (await channel.checkQueue(queue)).messageCount === 0, 20_000, 'every message delivered'),
    // once every consumer is gone, a message delivered and never acknowledged is ready again
    leftOver: async () => (await channel.checkQueue(queue)).messageCount,
    close: async () => {
      await channel.deleteQueue(queue).catch(() => undefined);
      await connection.close();
    },
  };
}

async function bullBroker(): Promise<Broker> {
  const prefix = `consumers-${randomBytes(4).toString('hex')}`;
  const queue = new Queue('reports', { connection: { url: redisUrl }, prefix });
  return {
    env: { CONSUMER: 'bullmq', REDIS_URL: redisUrl!, QUEUE: 'reports', BULL_PREFIX: prefix, LOCK_MS: '1000' },
    // each copy is a job of its own (another job id) carrying the same report id, the key function's key
    send: async (reportId, copy) => void (await queue.add('ready', { reportId }, { jobId: `${reportId}-${copy}`, attempts: 3 })),
    drained: () =>
      until(async () => {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        return Object.values(counts).every((count) => count === 0);
      }, 20_000, 'every job finished'),
    close: () => queue.close(),
  };
}

const brokers = [
  { name: 'NATS JetStream (durable pull consumer, default key Nats-Msg-Id)', create: jetStreamBroker, skip: !hasNats },
  { name: 'RabbitMQ (Nest Transport.RMQ, noAck: false, default key the AMQP messageId)', create: rabbitMqBroker, skip: !hasRabbitMq },
  { name: 'BullMQ (stalled job taken over, key: (job) => job.data.reportId)', create: bullBroker, skip: !hasRedis },
];

for (const { name, create, skip } of brokers) {
  describe.skipIf(skip || !hasPostgres)(`${name}: a consumer killed mid-handler, the message redelivered to another process`, () => {
    let database: Awaited<ReturnType<typeof createTestDatabase>>;
    let dataSource: DataSource;
    let broker: Broker;
    const processes: SpawnedApp[] = [];

    beforeAll(async () => {
      requireBuilt(builtFrom);
      database = await createTestDatabase('consumers');
      dataSource = await new DataSource({ type: 'postgres', url: database.url, entities: [IdempotencyRecord, ConsumerEffect], synchronize: true } as DataSourceOptions).initialize();
      broker = await create();
    });

    afterAll(async () => {
      for (const child of processes) child.child.kill('SIGKILL');
      await broker?.close();
      await dataSource?.destroy();
      await database?.drop();
    });

    const start = async (instance: string, holdFirst: boolean) => {
      const spawned = await spawnApp(root, CONSUMER_APP, instance, { ...broker.env, DATABASE_URL: database.url, LEASE_MS: '1500', HOLD_FIRST: holdFirst ? '1' : '0' });
      processes.push(spawned);
      return spawned;
    };
    const rowsOf = (key: string) => dataSource.getRepository(ConsumerEffect).findBy({ key });

    it('SIGKILL inside the handler: the redelivery runs on the second process and writes the one row', async () => {
      const first = await start('A', true);
      await broker.send('r-1', 1);
      await until(() => first.lines.includes('ENTERED r-1'), 20_000, 'A inside its handler');
      const second = await start('B', false);
      const exited = new Promise((resolve) => first.child.once('exit', resolve));
      first.child.kill('SIGKILL');
      await exited;
      await until(async () => (await rowsOf('r-1')).length === 1, 20_000, 'the redelivered row');
      await broker.drained();
      // past another ack wait / lock expiry: nothing else arrives
      await sleep(1_500);
      const rows = await rowsOf('r-1');
      expect(rows.map((row) => row.instance)).toEqual(['B']);
      expect(second.lines.filter((text) => text === 'ENTERED r-1')).toHaveLength(1);
    }, 120_000);

    it('N duplicates, sequential then concurrent, over two live processes: one row per key', async () => {
      await start('C', false);
      for (let copy = 1; copy <= 4; copy++) {
        await broker.send('r-2', copy);
        await sleep(200);
      }
      await Promise.all([1, 2, 3, 4, 5, 6].map((copy) => broker.send('r-3', copy)));
      await broker.drained();
      await sleep(500);
      expect(await rowsOf('r-2')).toHaveLength(1);
      expect(await rowsOf('r-3')).toHaveLength(1);
      expect(await rowsOf('r-1')).toHaveLength(1);
      if (broker.leftOver) {
        // every duplicate was acknowledged, the ones answered without running the handler included
        for (const spawned of processes) {
          const exited = new Promise((resolve) => spawned.child.once('exit', resolve));
          if (spawned.child.exitCode === null && spawned.child.signalCode === null) {
            spawned.child.kill('SIGKILL');
            await exited;
          }
        }
        await sleep(500);
        expect(await broker.leftOver()).toBe(0);
      }
    }, 120_000);
  });
}
