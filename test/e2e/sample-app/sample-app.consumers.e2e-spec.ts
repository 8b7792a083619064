// The sample's consumers as `npm start` runs them (startSample, the bootstrap main.ts uses): with no
// REDIS_URL / NATS_URL it starts its own redis-server and nats-server (scripts/redis.mjs and
// scripts/nats.mjs), generates reports as BullMQ jobs and records "report ready" events through its
// NATS @EventPattern consumer; with the binaries hidden (a PATH without them) it says so in one line
// and does both in process. Real servers, a real model service, a real SQLite file.
import { getQueueToken } from '@nestjs/bullmq';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import type { Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ResilienceEvents, type ResilienceEvent } from 'nest-resilience';
import { lastValueFrom } from 'rxjs';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findServerBinary } from '../../../sample-app/brokers/sample-brokers.js';
import { runDemo } from '../../../sample-app/demo.js';
import { startModelService, type ModelService } from '../../../sample-app/model-service/model-service.js';
import { REPORT_READY_PATTERN, reportReadyEventId, type ReportReadyMessage } from '../../../sample-app/report-events/report-ready.js';
import { ReportReadyPublisher } from '../../../sample-app/report-events/report-ready.publisher.js';
import { REPORT_JOBS_QUEUE } from '../../../sample-app/reports/report-jobs.js';
import { startSample, type RunningSample } from '../../../sample-app/start-sample.js';
import { listening } from '../../support/net.js';

const redisServer = findServerBinary({ binVar: 'REDIS_SERVER', names: ['redis-server', 'valkey-server'] }, process.env);
const natsServer = findServerBinary({ binVar: 'NATS_SERVER', names: ['nats-server'] }, process.env);
const haveServers = Boolean(redisServer && natsServer);
if (!haveServers) {
  console.warn(`SKIPPED the sample's BullMQ and NATS consumers with real servers: ${redisServer ? '' : 'redis-server '}${natsServer ? '' : 'nats-server '}not installed (apt-get install -y --no-upgrade redis-server nats-server).`);
}

/** Polls `read` every 25 ms until `done` holds; fails with the last value after `timeoutMs`. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > end) throw new Error(`still not there after ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The sample's settings in a test: no REDIS_URL / NATS_URL (it starts its own), a loopback port, its own SQLite file. */
function sampleEnv(sqliteFile: string, model: ModelService, path: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: path, PORT: '0', SQLITE_FILE: sqliteFile, MODEL_SERVICE_URL: model.url, NODE_ENV: 'test' };
  // the binaries `npm test` found, unless the test hides them
  if (path === process.env.PATH) {
    if (process.env.REDIS_SERVER) env.REDIS_SERVER = process.env.REDIS_SERVER;
    if (process.env.NATS_SERVER) env.NATS_SERVER = process.env.NATS_SERVER;
  }
  return env;
}

interface Started {
  sample: RunningSample;
  lines: string[];
  /** Event ids the "report ready" handler ran for (the row insert), in order. */
  recorded: string[];
}

async function start(dir: string, model: ModelService, path: string | undefined): Promise<Started> {
  const lines: string[] = [];
  const recorded: string[] = [];
  const sample = await startSample({
    env: sampleEnv(join(dir, `${randomUUID()}.sqlite`), model, path),
    log: (line) => lines.push(line),
    overrides: {
      logLevel: 'silent',
      console: false,
      generation: { totalMs: 4_000, attemptMs: 1_500 },
      hooks: { reportReadyRecording: (event) => void recorded.push(event.eventId) },
    },
  });
  return { sample, lines, recorded };
}

/** POSTs a report as acme with `key`; returns the status, the body and whether it was a replay. */
async function postReport(sample: RunningSample, key: string, topic: string): Promise<{ status: number; id: string; replayed: string | null }> {
  const response = await fetch(`${sample.url}/reports`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-account-id': 'acme', 'idempotency-key': key },
    body: JSON.stringify({ topic }),
  });
  const body = (await response.json()) as { id: string };
  return { status: response.status, id: body.id, replayed: response.headers.get('idempotent-replayed') };
}

async function reportStatus(sample: RunningSample, id: string): Promise<string> {
  const response = await fetch(`${sample.url}/reports/${id}`, { headers: { 'x-account-id': 'acme' } });
  return ((await response.json()) as { status: string }).status;
}

async function readyRows(sample: RunningSample, where: { reportId?: string; eventId?: string }): Promise<Array<{ event_id: string; report_id: string; via: string }>> {
  const [column, value] = where.eventId !== undefined ? ['event_id', where.eventId] : ['report_id', where.reportId];
  return sample.app.get(DataSource).query(`SELECT event_id, report_id, via FROM report_ready_events WHERE ${column} = ?`, [value]);
}

async function reportRows(sample: RunningSample, topic: string): Promise<number> {
  const rows: Array<{ count: number }> = await sample.app.get(DataSource).query('SELECT COUNT(*) AS count FROM reports WHERE topic = ?', [topic]);
  return Number(rows[0]!.count);
}

describe('sample app consumers (startSample, as `npm start`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sample-consumers-'));
  let model: ModelService;

  beforeAll(async () => {
    model = await startModelService({ port: 0, failureRate: 0, latencyMs: 20, log: () => undefined });
  });

  afterAll(async () => {
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe.skipIf(!haveServers)('with its own throwaway redis-server and nats-server', () => {
    let started: Started;
    let events: ClientProxy;

    beforeAll(async () => {
      started = await start(dir, model, process.env.PATH);
      events = ClientProxyFactory.create({ transport: Transport.NATS, options: { servers: [started.sample.brokers.natsUrl!] } });
      await events.connect();
    }, 60_000);

    afterAll(async () => {
      await events?.close();
      await started?.sample.close();
    });

    it('starts the servers itself and logs no fallback', () => {
      expect(started.sample.brokers.queueRedisUrl).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      expect(started.sample.brokers.natsUrl).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(started.sample.brokers.description).toContain('throwaway redis-server');
      expect(started.sample.brokers.description).toContain('throwaway nats-server');
      expect(started.lines.filter((line) => /not found|did not start/.test(line))).toEqual([]);
    });

    it('the same POST twice: one report, one BullMQ job, one "report ready" row recorded over NATS', async () => {
      const { sample, recorded } = started;
      const topic = `tides-${randomUUID()}`;
      const key = `key-${randomUUID()}`;
      const first = await postReport(sample, key, topic);
      const second = await postReport(sample, key, topic);
      expect(first.status).toBe(202);
      expect(second).toEqual({ status: 202, id: first.id, replayed: 'true' });

      await eventually(() => reportStatus(sample, first.id), (status) => status === 'completed');
      const rows = await eventually(() => readyRows(sample, { reportId: first.id }), (found) => found.length > 0);
      expect(rows).toEqual([{ event_id: reportReadyEventId(first.id), report_id: first.id, via: 'nats' }]);
      expect(await reportRows(sample, topic)).toBe(1);

      const queue = sample.app.get<Queue>(getQueueToken(REPORT_JOBS_QUEUE));
      const jobs = (await queue.getJobs(['completed', 'waiting', 'active', 'delayed', 'failed'])).filter((job) => job.data.reportId === first.id);
      expect(jobs.map((job) => [job.id, job.finishedOn !== undefined, job.failedReason])).toEqual([[first.id, true, undefined]]);
      expect(recorded.filter((id) => id === reportReadyEventId(first.id))).toHaveLength(1);
    }, 30_000);

    it('a second job for a generated report completes from the idempotency store: no model call, no second event', async () => {
      const { sample, recorded } = started;
      const { id } = await postReport(sample, `key-${randomUUID()}`, `reefs-${randomUUID()}`);
      await eventually(() => readyRows(sample, { reportId: id }), (found) => found.length > 0);
      const modelCalls = model.state.requests;

      // another job id, the same report: what a retried enqueue or a replayed outbox would add
      const queue = sample.app.get<Queue>(getQueueToken(REPORT_JOBS_QUEUE));
      const seen: ResilienceEvent[] = [];
      const unsubscribe = sample.app.get(ResilienceEvents).subscribe((event) => void seen.push(event));
      const again = await queue.add('generate', { reportId: id }, { jobId: `again-${id}` });
      const finished = await eventually(() => queue.getJob(again.id!), (job) => job?.finishedOn !== undefined);
      unsubscribe();
      expect(finished?.failedReason).toBeUndefined();
      expect(finished?.returnvalue).toEqual({ reportId: id, status: 'completed' });
      // the processor did not run: the job was answered from the store
      const idempotency = seen.filter((event) => event.requestId === again.id && event.event.startsWith('idempotency_')).map((event) => event.event);
      expect(idempotency).toEqual(['idempotency_replayed']);

      expect(model.state.requests).toBe(modelCalls);
      expect(await readyRows(sample, { reportId: id })).toHaveLength(1);
      expect(recorded.filter((eventId) => eventId === reportReadyEventId(id))).toHaveLength(1);
    }, 30_000);

    it('a NATS event delivered again (concurrently and later) is recorded once', async () => {
      const { sample, recorded } = started;
      const { id } = await postReport(sample, `key-${randomUUID()}`, `winds-${randomUUID()}`);
      await eventually(() => readyRows(sample, { reportId: id }), (found) => found.length > 0);

      const event: ReportReadyMessage = { eventId: `redelivered-${randomUUID()}`, reportId: id, accountId: 'acme' };
      await Promise.all([1, 2, 3].map(() => lastValueFrom(events.emit(REPORT_READY_PATTERN, event), { defaultValue: undefined })));
      await eventually(() => readyRows(sample, { eventId: event.eventId }), (found) => found.length > 0);
      // the job's own event, sent again, and the redelivered one once more after it was recorded
      await lastValueFrom(events.emit(REPORT_READY_PATTERN, { eventId: reportReadyEventId(id), reportId: id, accountId: 'acme' }), { defaultValue: undefined });
      await lastValueFrom(events.emit(REPORT_READY_PATTERN, event), { defaultValue: undefined });
      // nothing to wait for when a duplicate is acknowledged without running: give it time to misbehave
      await new Promise((resolve) => setTimeout(resolve, 750));

      expect(await readyRows(sample, { eventId: event.eventId })).toEqual([{ event_id: event.eventId, report_id: id, via: 'nats' }]);
      expect(await readyRows(sample, { reportId: id })).toHaveLength(2);
      expect(recorded.filter((eventId) => eventId === event.eventId)).toHaveLength(1);
      expect(recorded.filter((eventId) => eventId === reportReadyEventId(id))).toHaveLength(1);
    }, 30_000);

    it('close() stops the servers it started', async () => {
      const other = await start(dir, model, process.env.PATH);
      const ports = [other.sample.brokers.queueRedisUrl!, other.sample.brokers.natsUrl!].map((url) => Number(new URL(url).port));
      expect(await Promise.all(ports.map(listening))).toEqual([true, true]);
      await other.sample.close();
      expect(await Promise.all(ports.map(listening))).toEqual([false, false]);
    }, 60_000);
  });

  describe.skipIf(!haveServers)('npm run demo, with reports as BullMQ jobs', () => {
    let demoModel: ModelService;
    let sample: RunningSample;

    beforeAll(async () => {
      demoModel = await startModelService({ port: 0, log: () => undefined });
      sample = await startSample({
        env: sampleEnv(join(dir, 'demo.sqlite'), demoModel, process.env.PATH),
        log: () => undefined,
        overrides: { logLevel: 'silent', generation: { totalMs: 1_500, attemptMs: 400 }, breaker: { breakDurationMs: 500 } },
      });
    }, 60_000);

    afterAll(async () => {
      await sample?.close();
      await demoModel?.close();
    });

    it('walks every step: the report that meets the open breaker waits in the queue and completes once the model is back', async () => {
      const lines: string[] = [];
      const result = await runDemo({ baseUrl: sample.url, modelUrl: demoModel.url, out: (line) => lines.push(line), holdMs: 1_000, recoveryTimeoutMs: 10_000 });
      expect(result.rows.filter((row) => !row.ok), lines.join('\n')).toEqual([]);
      const output = lines.join('\n');
      expect(output).toContain('reports as BullMQ jobs');
      expect(result.rows.map((row) => [row.request, row.expected])).toEqual(
        expect.arrayContaining([
          ['POST /reports  (again)', 'processing (waits)'],
          ['(the job that waited)', 'completed'],
        ]),
      );
    }, 90_000);
  });

  describe('without redis-server and nats-server (a PATH without them)', () => {
    let started: Started;

    beforeAll(async () => {
      // only the directory of the Node that runs the tests: no server binary there
      started = await start(dir, model, dirname(process.execPath));
    }, 60_000);

    afterAll(async () => {
      await started?.sample.close();
    });

    it('says in one line which servers are missing and what it does instead', () => {
      expect(started.sample.brokers.queueRedisUrl).toBeUndefined();
      expect(started.sample.brokers.natsUrl).toBeUndefined();
      expect(started.lines).toHaveLength(1);
      const [line] = started.lines;
      expect(line).toContain('redis-server not found');
      expect(line).toContain('nats-server not found');
      expect(line).toContain('reports are generated in process');
      expect(line).toContain('"report ready" events are recorded directly');
    });

    it('still generates the report and records its "report ready" event once, however often it is announced', async () => {
      const { sample, recorded } = started;
      const topic = `tides-${randomUUID()}`;
      const key = `key-${randomUUID()}`;
      const first = await postReport(sample, key, topic);
      const second = await postReport(sample, key, topic);
      expect(second).toEqual({ status: 202, id: first.id, replayed: 'true' });

      await eventually(() => reportStatus(sample, first.id), (status) => status === 'completed');
      const rows = await eventually(() => readyRows(sample, { reportId: first.id }), (found) => found.length > 0);
      expect(rows).toEqual([{ event_id: reportReadyEventId(first.id), report_id: first.id, via: 'direct' }]);
      expect(await reportRows(sample, topic)).toBe(1);

      // announced again, twice at once: still one row, the recorder ran once
      const publisher = sample.app.get(ReportReadyPublisher);
      await Promise.all([publisher.reportReady({ id: first.id, accountId: 'acme' }), publisher.reportReady({ id: first.id, accountId: 'acme' })]);
      expect(await readyRows(sample, { reportId: first.id })).toHaveLength(1);
      expect(recorded.filter((id) => id === reportReadyEventId(first.id))).toHaveLength(1);
    }, 30_000);
  });
});
