import type { INestApplication } from '@nestjs/common';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleApp } from '../../../sample-app/create-sample-app.js';
import { ReportQueue } from '../../../sample-app/reports/report-queue.service.js';
import { platforms } from '../../support/app.js';

interface BadRequestCase {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly status: number;
  /** Accepted codes: the platforms word a few refusals differently. */
  readonly codes: readonly string[];
}

const json = { 'content-type': 'application/json' };
const nested = (depth: number) => `{"topic":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;

/** Bad input the fuzzing found answered 500 or outside problem+json, plus its neighbours. */
const cases: BadRequestCase[] = [
  { name: 'invalid JSON', method: 'POST', path: '/reports', headers: json, body: '{"topic":', status: 400, codes: ['malformed_json'] },
  { name: 'JSON null on Express / any non-object', method: 'POST', path: '/reports', headers: json, body: 'null', status: 400, codes: ['malformed_json', 'validation_failed'] },
  { name: 'a 2 MB body', method: 'POST', path: '/reports', headers: json, body: JSON.stringify({ topic: 'x'.repeat(2_000_000) }), status: 413, codes: ['body_too_large'] },
  { name: 'an XML body', method: 'POST', path: '/reports', headers: { 'content-type': 'application/xml' }, body: '<topic/>', status: 415, codes: ['unsupported_media_type'] },
  { name: 'a text body', method: 'POST', path: '/reports', headers: { 'content-type': 'text/plain' }, body: 'topic', status: 415, codes: ['unsupported_media_type'] },
  { name: 'a body without a content type', method: 'POST', path: '/reports', headers: {}, body: 'topic=a', status: 415, codes: ['unsupported_media_type'] },
  { name: 'an unsupported charset', method: 'POST', path: '/reports', headers: { 'content-type': 'application/json; charset=latin1' }, body: '{"topic":"a"}', status: 415, codes: ['unsupported_charset'] },
  { name: 'a 3000-deep body', method: 'POST', path: '/reports', headers: json, body: nested(3000), status: 400, codes: ['body_too_deep'] },
  { name: 'a NUL character in topic', method: 'POST', path: '/reports', headers: json, body: JSON.stringify({ topic: 'a\u0000b' }), status: 400, codes: ['validation_failed'] },
  { name: 'a line break in topic', method: 'POST', path: '/reports', headers: json, body: JSON.stringify({ topic: 'a\nb' }), status: 400, codes: ['validation_failed'] },
  { name: 'an unknown route', method: 'GET', path: '/nope', status: 404, codes: ['not_found'] },
  { name: 'an unknown method', method: 'DELETE', path: '/reports', status: 404, codes: ['not_found'] },
  { name: 'a malformed percent-encoding', method: 'GET', path: '/reports/%E0%A4%A', status: 400, codes: ['bad_request', 'bad_url'] },
  { name: 'a control character in a query', method: 'GET', path: '/preview?topic=a%00b', status: 400, codes: ['validation_failed'] },
  { name: 'a number-only Idempotency-Key', method: 'POST', path: '/reports', headers: { ...json, 'idempotency-key': '12345' }, body: '{"topic":"a"}', status: 400, codes: ['idempotency_key_invalid'] },
];

describe.each(platforms)('sample app: every error answer is problem+json (%s)', (platform) => {
  let app: INestApplication;
  let url: string;
  beforeAll(async () => {
    app = await createSampleApp({ sqliteFile: ':memory:', modelServiceUrl: 'http://127.0.0.1:9', logLevel: 'silent' }, { platform });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.get(ReportQueue).idle();
    await app?.close();
  });

  /** Sends `raw` bytes on a fresh connection and returns the status line, the content type and the body. */
  const sendRaw = (raw: string) =>
    new Promise<{ status: string; contentType: string; body: string }>((resolve, reject) => {
      const { port } = new URL(url);
      const socket = connect(Number(port), '127.0.0.1', () => socket.end(raw));
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('error', reject).on('close', () => {
        const [head = '', body = ''] = text.split('\r\n\r\n');
        const lines = head.split('\r\n');
        resolve({ status: lines[0] ?? '', contentType: lines.find((line) => /^content-type:/i.test(line)) ?? '', body });
      });
    });

  it.each([
    ['a request without Host', 'GET /accounts/acme HTTP/1.1\r\nConnection: close\r\n\r\n', 'host_required'],
    ['a Content-Length that is not a number', 'POST /reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}', 'malformed_request'],
    ['Content-Length sent twice', 'POST /reports HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 'malformed_request'],
    ['a control character in a header', 'GET /accounts/acme HTTP/1.1\r\nHost: x\r\nX-A: a\u0001b\r\n\r\n', 'malformed_request'],
  ])('%s (refused by the HTTP parser or the Host rule) → 400 problem+json', async (_name, raw, code) => {
    const answer = await sendRaw(raw);
    expect(answer.status).toBe('HTTP/1.1 400 Bad Request');
    expect(answer.contentType).toMatch(/application\/problem\+json/i);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 400, code });
  });

  const credits = async () => ((await (await fetch(`${url}/accounts/acme`)).json()) as { credits: number }).credits;

  it.each(cases)('$name → $status problem+json, nothing charged or stored', async ({ method, path, headers, body, status, codes }) => {
    const before = await credits();
    const key = `errors-${platform}-${Math.random().toString(36).slice(2)}`;
    const response = await fetch(`${url}${path}`, { method, headers: { 'x-account-id': 'acme', 'idempotency-key': key, ...headers }, body });
    const problem = (await response.json()) as { status: number; code: string; detail: string; type: string };
    expect({ status: response.status, contentType: response.headers.get('content-type') }).toEqual({ status, contentType: expect.stringMatching(/^application\/problem\+json/) });
    expect(problem).toMatchObject({ status, detail: expect.any(String), type: expect.stringMatching(/^https:\/\//) });
    expect(codes).toContain(problem.code);
    expect(await credits()).toBe(before);
    // the key was not claimed: a sound request with it runs (202) and charges once
    if (method === 'POST' && path === '/reports' && !headers?.['idempotency-key']) {
      const sound = await fetch(`${url}/reports`, { method: 'POST', headers: { 'x-account-id': 'acme', 'idempotency-key': key, ...json }, body: '{"topic":"sound"}' });
      expect({ status: sound.status, replayed: sound.headers.get('idempotent-replayed') }).toEqual({ status: 202, replayed: null });
      expect(await credits()).toBe(before - 1);
    }
  });
});
