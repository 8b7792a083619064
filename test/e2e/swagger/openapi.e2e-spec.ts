import 'reflect-metadata';
import { Body, Controller, Get, HttpCode, Param, Post, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import { ApiResponse, DECORATORS, DocumentBuilder, type OpenAPIObject } from '@nestjs/swagger';
import { Bulkhead, CircuitBreaker, Fallback, Idempotent, ResilienceModule, Retryable, Timeout } from 'nest-resilience';
import { PROBLEM_DETAILS_SCHEMA, ResilienceSwagger } from 'nest-resilience/swagger';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { createStore } from '../idempotency/stores.js';
import { createApp, platforms, type Platform } from '../../support/app.js';

const PROBLEM = 'application/problem+json';
const PROBLEM_REF = { $ref: `#/components/schemas/${PROBLEM_DETAILS_SCHEMA}` };

@Controller('reports')
class ReportsController {
  private created = 0;

  @Post()
  @HttpCode(202)
  @Idempotent()
  @Retryable()
  @Timeout({ total: 8_000, attempt: 2_000 })
  create(@Body() body: { topic?: string }) {
    return { id: ++this.created, topic: body.topic };
  }

  @Get(':id')
  @CircuitBreaker()
  @Bulkhead({ maxConcurrent: 5, rejectStatus: 429 })
  find(@Param('id') id: string) {
    return { id };
  }

  @Get('recommendations/all')
  @Fallback({ items: [] })
  @CircuitBreaker()
  recommendations(): never {
    throw new ServiceUnavailableException();
  }

  @Post('drafts')
  @Idempotent({ required: false, failOpen: true })
  @ApiResponse({ status: 409, description: 'Our own words about 409.' })
  draft() {
    return { draft: true };
  }

  @Get('plain/list')
  plain() {
    return [];
  }
}

const config = new DocumentBuilder().setTitle('Reports').setVersion('1').build();

/** The operation of `method path` in `document`. */
function operation(document: OpenAPIObject, path: string, method: 'get' | 'post'): any {
  const found = (document.paths[path] as any)?.[method];
  if (!found) throw new Error(`no ${method} ${path} in ${Object.keys(document.paths).join(', ')}`);
  return found;
}

/** The problem codes a response documents (its examples). */
const codesOf = (response: any): string[] => Object.keys(response?.content?.[PROBLEM]?.examples ?? {}).sort();

/** The app under a global prefix (set before init, as in a real main.ts): swagger must find the routes there. */
async function createPrefixedApp(platform: Platform): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot({ timeout: { status: 504 } })], controllers: [ReportsController] }).compile();
  const app = platform === 'fastify' ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false }) : moduleRef.createNestApplication({ logger: false });
  app.setGlobalPrefix('api');
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

describe.each(platforms)('OpenAPI document of decorated routes (%s)', (platform) => {
  let app: INestApplication;
  let document: OpenAPIObject;

  beforeAll(async () => {
    app = await createPrefixedApp(platform);
    document = ResilienceSwagger.createDocument(app, config);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('documents the Idempotency-Key request header as the route requires it', () => {
    const create = operation(document, '/api/reports', 'post');
    expect(create.parameters).toContainEqual(expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: true }));
    const draft = operation(document, '/api/reports/drafts', 'post');
    expect(draft.parameters).toContainEqual(expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: false }));
  });

  it('documents Idempotent-Replayed and the echoed key on the success response of an idempotent route', () => {
    const accepted = operation(document, '/api/reports', 'post').responses['202'];
    expect(accepted.headers['Idempotent-Replayed']).toEqual({ $ref: '#/components/headers/Idempotent-Replayed' });
    expect(accepted.headers['Idempotency-Key']).toEqual(expect.objectContaining({ schema: { type: 'string' } }));
    expect(document.components?.headers?.['Idempotent-Replayed']).toEqual(expect.objectContaining({ schema: { type: 'string', enum: ['true'] } }));
  });

  it('documents each problem status of an idempotent, retried route with the shared problem+json schema', () => {
    const { responses } = operation(document, '/api/reports', 'post');
    expect(Object.keys(responses).sort()).toEqual(['202', '400', '409', '413', '422', '502', '503', '504']);
    for (const status of ['400', '409', '413', '422', '502', '503', '504']) {
      expect(responses[status].content[PROBLEM].schema).toEqual(PROBLEM_REF);
    }
    expect(codesOf(responses['400'])).toEqual(['idempotency_body_too_deep', 'idempotency_key_invalid', 'idempotency_key_missing']);
    expect(codesOf(responses['413'])).toEqual(['idempotency_body_too_large']);
    expect(codesOf(responses['409'])).toEqual(['idempotency_request_in_progress']);
    expect(codesOf(responses['422'])).toEqual(['idempotency_key_reused']);
    expect(codesOf(responses['502'])).toEqual(['upstream_rejected']);
    // the in-memory store has no connection pool: no pool_exhausted, and no database in the texts
    expect(codesOf(responses['503'])).toEqual(['idempotency_store_timeout', 'idempotency_store_unavailable', 'retries_exhausted', 'upstream_unavailable']);
    expect(JSON.stringify(responses['503'])).not.toMatch(/database|statement/i);
    // forRoot({ timeout: { status: 504 } }) moves the timeout answer
    expect(codesOf(responses['504'])).toEqual(['timeout']);
    expect(responses['409'].headers).toEqual({ 'Retry-After': { $ref: '#/components/headers/Retry-After' } });
    expect(responses['503'].headers).toEqual({ 'Retry-After': { $ref: '#/components/headers/Retry-After' } });
    expect(responses['422'].headers).toBeUndefined();
  });

  it('documents the breaker and the bulkhead (with its reject status) of a route', () => {
    const { responses, parameters } = operation(document, '/api/reports/{id}', 'get');
    expect(parameters.some((parameter: { in: string }) => parameter.in === 'header')).toBe(false);
    expect(Object.keys(responses).sort()).toEqual(['200', '429', '502', '503', '504']);
    expect(codesOf(responses['429'])).toEqual(['bulkhead_rejected']);
    expect(codesOf(responses['503'])).toEqual(['circuit_open', 'upstream_unavailable']);
    expect(responses['200'].headers).toBeUndefined();
  });

  it('leaves out the problems a fallback answers instead', () => {
    const { responses } = operation(document, '/api/reports/recommendations/all', 'get');
    expect(Object.keys(responses).sort()).toEqual(['200', '502']);
  });

  it('keeps the application\'s own documentation of a status, and documents only what a fail-open optional key can answer', () => {
    const { responses } = operation(document, '/api/reports/drafts', 'post');
    expect(responses['409'].description).toBe('Our own words about 409.');
    // with any @ApiResponse() of its own, swagger documents only those: the library adds its problems
    expect(Object.keys(responses).sort()).toEqual(['400', '409', '413', '422']);
    expect(codesOf(responses['400'])).toEqual(['idempotency_body_too_deep', 'idempotency_key_invalid']);
  });

  it('adds nothing to an undecorated route', () => {
    expect(operation(document, '/api/reports/plain/list', 'get')).toEqual(expect.objectContaining({ parameters: [], responses: { '200': { description: '' } } }));
  });

  it('declares one RFC 9457 problem schema, and leaves no trace of the build on the document or the classes', () => {
    expect(document.components?.schemas?.[PROBLEM_DETAILS_SCHEMA]).toEqual(
      expect.objectContaining({ type: 'object', required: ['type', 'title', 'status', 'detail', 'code'] }),
    );
    expect(JSON.stringify(document)).not.toContain('x-nest-resilience');
    expect(Reflect.getMetadata(DECORATORS.API_EXTENSION, ReportsController.prototype.create)).toBeUndefined();
    expect(ResilienceSwagger.createDocument(app, config)).toEqual(document);
  });

  it('documents the answers the routes really give', async () => {
    const server = app.getHttpServer();
    const answers = [
      await request(server).post('/api/reports').send({ topic: 'tides' }),
      await request(server).post('/api/reports').set('Idempotency-Key', '"a"; b').send({ topic: 'tides' }),
      await request(server).post('/api/reports').set('Idempotency-Key', 'report-1').send({ topic: 'tides' }),
      await request(server).post('/api/reports').set('Idempotency-Key', 'report-1').send({ topic: 'waves' }),
    ];
    const replay = await request(server).post('/api/reports').set('Idempotency-Key', 'report-1').send({ topic: 'tides' });
    expect(replay.status).toBe(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const { responses } = operation(document, '/api/reports', 'post');
    for (const answer of answers) {
      const documented = responses[String(answer.status)];
      expect(documented, `status ${answer.status}`).toBeDefined();
      if (answer.status >= 400) {
        expect(answer.headers['content-type']).toContain(PROBLEM);
        expect(codesOf(documented)).toContain(answer.body.code);
        expect(Object.keys(answer.body).sort()).toEqual([...(document.components!.schemas![PROBLEM_DETAILS_SCHEMA] as { required: string[] }).required].sort());
      }
    }
    expect(answers.map((answer) => answer.status)).toEqual([400, 400, 202, 422]);
  });
});

describe('OpenAPI document built before the application starts', () => {
  it('documents the routes right after the application is created, as a main.ts that builds the document before listen()', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], controllers: [ReportsController] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    try {
      const document = ResilienceSwagger.createDocument(app, config);
      expect(operation(document, '/reports', 'post').parameters).toContainEqual(expect.objectContaining({ name: 'Idempotency-Key', required: true }));
      // the default timeout.status: 503
      expect(codesOf(operation(document, '/reports', 'post').responses['503'])).toEqual(['idempotency_store_timeout', 'idempotency_store_unavailable', 'retries_exhausted', 'timeout', 'upstream_unavailable']);
    } finally {
      await app.close();
    }
  });

  it('documents pool exhaustion and the database\'s lock and statement timeouts with a store on a connection pool (TypeORM)', async () => {
    const sqlite = await createStore('sqlite');
    const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot({ idempotency: { store: sqlite.store } })], controllers: [ReportsController] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    try {
      const responses = operation(ResilienceSwagger.createDocument(app, config), '/reports', 'post').responses;
      expect(codesOf(responses['503'])).toEqual(['idempotency_store_pool_exhausted', 'idempotency_store_timeout', 'idempotency_store_unavailable', 'retries_exhausted', 'timeout', 'upstream_unavailable']);
      expect(responses['503'].content[PROBLEM].examples.idempotency_store_timeout.value.detail).toMatch(/lock or statement/);
    } finally {
      await app.close();
      await sqlite.close();
    }
  });
});

describe('OpenAPI document with the module switched off', () => {
  it('documents nothing when forRoot({ enabled: false }): the routes run undecorated', async () => {
    const app = await createApp('express', { imports: [ResilienceModule.forRoot({ enabled: false })], controllers: [ReportsController] });
    try {
      const document = ResilienceSwagger.createDocument(app, config);
      expect(operation(document, '/reports', 'post').parameters).toEqual([]);
      expect(document.components?.schemas?.[PROBLEM_DETAILS_SCHEMA]).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
