import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Inject, Injectable, type INestApplication } from '@nestjs/common';
import { ResilienceEvents, ResilienceModule, Retryable, Timeout, assertOk, withDeadline, type ResilienceEvent } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

const REPORTER_URL = Symbol('REPORTER_URL');

/** A provider method run as a background job: its first call fails with 503, the retry succeeds. */
@Injectable()
class Reporter {
  constructor(@Inject(REPORTER_URL) private readonly url: string) {}

  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  async report(): Promise<void> {
    await assertOk(await fetch(this.url, withDeadline({ method: 'POST' })));
  }
}

@Controller('jobs')
class JobsController {
  constructor(private readonly reporter: Reporter) {}

  /** Undecorated route that queues work outliving the request. */
  @Get()
  start() {
    setImmediate(() => void this.reporter.report());
    return { queued: true };
  }

  /** Decorated route that queues the same work: it runs after this route's attempt settled. */
  @Get('decorated')
  @Timeout(5_000)
  startDecorated() {
    setImmediate(() => void this.reporter.report());
    return { queued: true };
  }
}

describe.each(platforms)('request id of work started by a route (%s)', (platform) => {
  let app: INestApplication;
  let server: Server;
  const seenRequestIds: Array<string | undefined> = [];
  const events: ResilienceEvent[] = [];
  let reported: () => void = () => undefined;
  /** Resets what the dependency saw; resolves once the next job called it twice (fail, then succeed). */
  const nextJob = () => {
    seenRequestIds.length = 0;
    events.length = 0;
    return new Promise<void>((resolve) => (reported = resolve));
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      seenRequestIds.push(req.headers['x-request-id'] as string | undefined);
      res.writeHead(seenRequestIds.length === 1 ? 503 : 204).end();
      if (seenRequestIds.length === 2) reported();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/report`;
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot()],
      controllers: [JobsController],
      providers: [Reporter, { provide: REPORTER_URL, useValue: url }],
    });
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
  });
  afterAll(async () => {
    await app?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('enters no request scope for an undecorated route: the job it queues runs untagged', async () => {
    const done = nextJob();
    await request(app.getHttpServer()).get('/jobs').set('x-request-id', 'req-42').expect(200, { queued: true });
    await done;
    expect(seenRequestIds).toEqual([undefined, undefined]);
    const retry = events.find((event) => event.event === 'retry');
    expect(retry).toMatchObject({ policy: 'Reporter.report', status: 503 });
    expect(retry?.requestId).toBeUndefined();
  });

  it('runs a job queued by a decorated route on its own, not under the settled attempt that queued it', async () => {
    const done = nextJob();
    await request(app.getHttpServer()).get('/jobs/decorated').set('x-request-id', 'req-43').expect(200, { queued: true });
    await done;
    expect(seenRequestIds).toEqual(['req-43', 'req-43']);
    expect(events.filter((event) => event.event === 'give_up')).toEqual([]);
    expect(events.find((event) => event.event === 'retry')).toMatchObject({ policy: 'Reporter.report', requestId: 'req-43' });
  });
});
