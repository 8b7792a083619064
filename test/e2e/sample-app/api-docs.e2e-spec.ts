import type { INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleApp } from '../../../sample-app/create-sample-app.js';
import { platforms } from '../../support/app.js';

const dir = mkdtempSync(join(tmpdir(), 'sample-app-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The sample app as `npm start` builds it (createSampleApp), on a real SQLite file and a loopback port.
describe.each(platforms)('the sample app serves its OpenAPI document (%s)', (platform) => {
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    app = await createSampleApp(
      { sqliteFile: join(dir, `${platform}.sqlite`), modelServiceUrl: 'http://127.0.0.1:9', logLevel: 'silent' },
      { platform },
    );
    await app.listen(0, '127.0.0.1');
    if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('documents POST /reports with its required Idempotency-Key, replay header and problem responses on /docs-json', async () => {
    const response = await fetch(`${base}/docs-json`);
    expect(response.status).toBe(200);
    const document = await response.json();
    const create = document.paths['/reports'].post;
    expect(create.parameters).toContainEqual(expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: true }));
    expect(create.responses['202'].headers['Idempotent-Replayed']).toEqual({ $ref: '#/components/headers/Idempotent-Replayed' });
    // transactional: a response that cannot be stored rolls the writes back (500)
    expect(Object.keys(create.responses).sort()).toEqual(['202', '400', '409', '413', '422', '500', '503']);
    expect(create.responses['409'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/ProblemDetails' });
    expect(document.components.schemas.ProblemDetails.required).toEqual(['type', 'title', 'status', 'detail', 'code']);
    // GET /reports/:id carries no resilience decorator: nothing is added to it
    expect(Object.keys(document.paths['/reports/{id}'].get.responses)).toEqual(['200']);
  });

  it(platform === 'express' ? 'serves Swagger UI on /docs' : 'serves no Swagger UI without @fastify/static (the JSON document only)', async () => {
    const response = await fetch(`${base}/docs`);
    if (platform === 'express') {
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('swagger-ui');
    } else {
      expect(response.status).toBe(404);
    }
  });
});
