import 'reflect-metadata';
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { HttpClient, InjectHttpClient, isUpstreamContractError, ResilientHttpModule, type UpstreamContractError } from 'nest-resilience/http';
import request from 'supertest';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { createApp, platforms } from '../../support/app.js';
import { startUpstream, type Upstream } from './upstreams.js';

const Report = z.object({ id: z.number(), title: z.string(), tags: z.array(z.string()) });
const ReportV = v.object({ id: v.number(), title: v.string(), tags: v.array(v.string()) });

describe('typed responses with Standard Schema validators (zod 4, valibot)', () => {
  let upstream: Upstream;
  let client: HttpClient;
  let answer: { raw?: string; body?: unknown; headers?: Record<string, string> };

  beforeAll(async () => {
    upstream = await startUpstream(() => answer);
    client = new HttpClient('reports', { baseUrl: upstream.url, retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 1 } } });
  });
  afterAll(async () => {
    await client.close();
    await upstream.close();
  });
  afterEach(() => upstream.received.splice(0));

  it('returns the validated value, typed by the schema', async () => {
    answer = { body: { id: 1, title: 'Q3', tags: ['x'], extra: 'dropped by zod' } };
    const zodResult = await client.get('/reports/1', { schema: Report });
    expectTypeOf(zodResult.data).toEqualTypeOf<{ id: number; title: string; tags: string[] }>();
    expect(zodResult.data).toEqual({ id: 1, title: 'Q3', tags: ['x'] });
    const valibotResult = await client.get('/reports/1', { schema: ReportV });
    expectTypeOf(valibotResult.data).toEqualTypeOf<{ id: number; title: string; tags: string[] }>();
    expect(valibotResult.data.title).toBe('Q3');
    const explicit = await client.get<{ anything: true }>('/reports/1');
    expectTypeOf(explicit.data).toEqualTypeOf<{ anything: true }>();
  });

  it('raises UpstreamContractError with the failing paths, once (a contract break is not retried)', async () => {
    answer = { body: { id: 'one', title: 'Q3', tags: ['ok', 42] } };
    for (const schema of [Report, ReportV]) {
      const error = (await client.get('/reports/1', { schema }).catch((e: unknown) => e)) as UpstreamContractError;
      expect(isUpstreamContractError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'contract', status: 200, retryable: false, attempts: 1 });
      expect(error.paths).toEqual(['$.id', '$.tags[1]']);
    }
    expect(upstream.received).toHaveLength(2);
  });

  it('treats a body that is not JSON as a contract break when a schema expects JSON', async () => {
    answer = { raw: '<html>maintenance</html>', headers: { 'content-type': 'text/html' } };
    await expect(client.get('/reports/1', { schema: Report })).rejects.toMatchObject({ code: 'contract', paths: ['$'] });
    // without a schema the text is returned as it is
    await expect(client.get('/reports/1')).resolves.toMatchObject({ data: '<html>maintenance</html>' });
  });
});

@Injectable()
class ReportsGateway {
  constructor(@InjectHttpClient('reports') private readonly reports: HttpClient) {}

  load() {
    return this.reports.get('/reports/1', { schema: Report }).then((response) => response.data);
  }
}

@Controller('reports')
class ReportsController {
  constructor(private readonly gateway: ReportsGateway) {}

  @Get()
  show() {
    return this.gateway.load();
  }
}

describe.each(platforms)('a contract break inside a Nest app on %s', (platform) => {
  let app: INestApplication;
  let upstream: Upstream;

  beforeAll(async () => {
    upstream = await startUpstream(() => ({ body: { id: 7, title: { secret: 'card 4242 4242 4242 4242' }, tags: 'no' } }));
    app = await createApp(platform, {
      imports: [ResilienceModule.forRoot(), ResilientHttpModule.register({ clients: { reports: { baseUrl: upstream.url } } })],
      controllers: [ReportsController],
      providers: [ReportsGateway],
    });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('answers 502 upstream_contract naming the failing paths and never echoing the payload', async () => {
    const response = await request(app.getHttpServer()).get('/reports').expect(502);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.body).toMatchObject({ code: 'upstream_contract', status: 502 });
    expect(response.body.detail).toContain('$.title');
    expect(response.body.detail).toContain('$.tags');
    expect(JSON.stringify(response.body)).not.toMatch(/4242|secret/);
  });
});
