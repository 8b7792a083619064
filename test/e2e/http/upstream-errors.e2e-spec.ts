import 'reflect-metadata';
import { Controller, Get, Inject, NotFoundException, type INestApplication } from '@nestjs/common';
import { ResilienceModule, Retryable } from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { closedPortUrl, everythingSent, expectProblem, fetchUpstream, retryAfterSeconds } from './support.js';

const UPSTREAM_URL = Symbol('UPSTREAM_URL');
const REFUSING_URL = Symbol('REFUSING_URL');

const SECRET = 'upstream-internal-detail';

// The dependency's answer per path.
const script = (path: string) => {
  switch (path) {
    case '/overloaded': // a back-off hint far beyond the route's 30 s deadline
      return { status: 503, headers: { 'retry-after': '60' } };
    case '/unavailable':
      return { status: 503 };
    case '/rejects':
      return { status: 400, body: { secret: SECRET } };
    default:
      return { status: 500 };
  }
};

/** Handler runs per route, to count attempts that never reach the dependency. */
const handlerRuns = { notFound: 0, refused: 0 };

@Controller('upstream')
class UpstreamController {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    @Inject(REFUSING_URL) private readonly refusing: string,
  ) {}

  /** Default timeouts (30 s total, 10 s per attempt) and retries. */
  @Get('overloaded')
  @Retryable()
  overloaded() {
    return fetchUpstream(`${this.upstream}/overloaded`);
  }

  @Get('unavailable')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  unavailable() {
    return fetchUpstream(`${this.upstream}/unavailable`);
  }

  @Get('rejects')
  @Retryable()
  rejects() {
    return fetchUpstream(`${this.upstream}/rejects`);
  }

  @Get('refused')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  refused() {
    handlerRuns.refused++;
    return fetchUpstream(`${this.refusing}/reports`);
  }

  @Get('not-found')
  @Retryable()
  notFound() {
    handlerRuns.notFound++;
    throw new NotFoundException('no such report');
  }
}

describe.each(platforms)('error defaults for upstream failures (%s)', (platform) => {
  let upstream: LoopbackServer;
  let app: INestApplication;

  beforeAll(async () => {
    upstream = await startDependency(script);
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot()],
      controllers: [UpstreamController],
      providers: [
        { provide: UPSTREAM_URL, useValue: upstream.url },
        { provide: REFUSING_URL, useValue: await closedPortUrl() },
      ],
    });
  });

  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });

  const get = (path: string) => request(app.getHttpServer()).get(path);

  it('answers 503 upstream_unavailable with the dependency’s Retry-After when the hint is beyond the deadline, calling it once', async () => {
    const response = await get('/upstream/overloaded');
    expectProblem(response, 503, 'upstream_unavailable');
    expect(response.headers['retry-after']).toBe('60');
    expect(upstream.callsTo('/overloaded')).toBe(1);
  });

  it('answers 503 with a Retry-After once the retries of a 503 without a hint are exhausted', async () => {
    const response = await get('/upstream/unavailable');
    expectProblem(response, 503, 'upstream_unavailable', 'retries_exhausted');
    retryAfterSeconds(response);
    expect(upstream.callsTo('/unavailable')).toBe(2);
  });

  it('never reveals the dependency’s address in the answer to exhausted retries', async () => {
    const before = upstream.callsTo('/unavailable');
    const response = await get('/upstream/unavailable');
    expectProblem(response, 503, 'upstream_unavailable', 'retries_exhausted');
    expect(upstream.callsTo('/unavailable') - before).toBe(2);
    expect(everythingSent(response)).not.toContain('127.0.0.1');
  });

  it('answers 502 upstream_rejected to a 4xx from the dependency, without retrying it or leaking its body', async () => {
    const response = await get('/upstream/rejects');
    expectProblem(response, 502, 'upstream_rejected');
    expect(upstream.callsTo('/rejects')).toBe(1);
    expect(everythingSent(response)).not.toContain(SECRET);
  });

  it('lets the application’s own HttpException through untouched: 404 with Nest’s usual JSON body', async () => {
    handlerRuns.notFound = 0;
    const response = await get('/upstream/not-found');
    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toEqual({ statusCode: 404, message: 'no such report', error: 'Not Found' });
    expect(handlerRuns.notFound).toBe(1);
  });

  it('answers 503 problem+json to a refused connection without revealing the address or the system error', async () => {
    handlerRuns.refused = 0;
    const response = await get('/upstream/refused');
    expectProblem(response, 503, 'upstream_unavailable', 'retries_exhausted');
    expect(handlerRuns.refused).toBe(2);
    const sent = everythingSent(response);
    expect(sent).not.toContain('127.0.0.1');
    expect(sent).not.toContain('ECONNREFUSED');
  });
});
