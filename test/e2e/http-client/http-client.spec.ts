import { HttpClient, isUpstreamError, type UpstreamError } from 'nest-resilience/http';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream, type Upstream } from './upstreams.js';

const fastRetry = { maxAttempts: 3, backoff: { type: 'constant', delay: 1 } } as const;
let upstream: Upstream | undefined;
const clients: HttpClient[] = [];

function client(name: string, options: Partial<ConstructorParameters<typeof HttpClient>[1]> = {}): HttpClient {
  const created = new HttpClient(name, { baseUrl: upstream!.url, retry: fastRetry, ...options });
  clients.push(created);
  return created;
}

async function failureOf(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isUpstreamError(error)).toBe(true);
  return error as UpstreamError;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await upstream?.close();
  upstream = undefined;
});

describe('HttpClient against a real loopback upstream', () => {
  it('retries 503 and a network-level 5xx, and answers with the parsed JSON and the number of requests', async () => {
    upstream = await startUpstream((_req, n) => (n < 3 ? { status: n === 1 ? 503 : 500 } : { body: { ok: true } }));
    const response = await client('svc').get('/items', { query: { page: 2, tag: ['a', 'b'] } });
    expect(response).toMatchObject({ status: 200, data: { ok: true }, attempts: 3 });
    expect(upstream.received.map((r) => r.path)).toEqual(Array(3).fill('/items?page=2&tag=a&tag=b'));
  });

  it('reads each response type from the buffered answer: text, bytes, none (the body is not kept), and the error body of a failure', async () => {
    upstream = await startUpstream((req) => (req.path === '/fail' ? { status: 409, body: { error: 'taken' } } : { raw: 'héllo', headers: { 'content-type': 'text/plain; charset=utf-8' } }));
    const svc = client('svc');
    expect((await svc.get('/t', { responseType: 'text' })).data).toBe('héllo');
    const bytes = (await svc.get('/b', { responseType: 'bytes' })).data as Uint8Array;
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(bytes).toString('utf8')).toBe('héllo');
    expect(await svc.get('/n', { responseType: 'none' })).toMatchObject({ status: 200, data: undefined });
    const error = await failureOf(svc.get('/fail'));
    expect(error).toMatchObject({ code: 'http_status', status: 409, body: { error: 'taken' } });
  });

  it('does not retry a 4xx other than 408/429, and reports it as a non-retryable http_status failure', async () => {
    upstream = await startUpstream(() => ({ status: 404, body: { error: 'missing' } }));
    const error = await failureOf(client('svc').get('/missing'));
    expect(error).toMatchObject({ code: 'http_status', status: 404, retryable: false, attempts: 1, client: 'svc', method: 'GET' });
    expect(upstream.received).toHaveLength(1);
  });

  it('gives up after maxAttempts with the last failure, counting every request', async () => {
    upstream = await startUpstream(() => ({ status: 502 }));
    const error = await failureOf(client('svc').get('/down'));
    expect(error).toMatchObject({ code: 'http_status', status: 502, retryable: true, attempts: 3 });
  });

  it('sends an Idempotency-Key on POST that stays the same on every retry', async () => {
    upstream = await startUpstream((_req, n) => (n === 1 ? { status: 503 } : { status: 201, body: { id: 7 } }));
    const response = await client('svc').post('/charges', { amount: 5 });
    expect(response).toMatchObject({ status: 201, data: { id: 7 }, attempts: 2 });
    const keys = upstream.received.map((r) => r.headers['idempotency-key']);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(JSON.parse(upstream.received[0]!.body)).toEqual({ amount: 5 });
    expect(upstream.received[0]!.headers['content-type']).toBe('application/json');
  });

  it('never retries a POST that carries no Idempotency-Key', async () => {
    upstream = await startUpstream(() => ({ status: 503 }));
    const error = await failureOf(client('svc').post('/charges', { amount: 5 }, { idempotencyKey: false }));
    expect(error).toMatchObject({ code: 'http_status', status: 503, attempts: 1 });
    expect(upstream.received).toHaveLength(1);
    expect(upstream.received[0]!.headers['idempotency-key']).toBeUndefined();

    const explicit = client('explicit', { idempotencyKeys: 'explicit' });
    await failureOf(explicit.post('/charges', {}));
    expect(upstream.received).toHaveLength(2);
    await failureOf(explicit.post('/charges', {}, { idempotencyKey: 'order-1' }));
    expect(upstream.received.slice(2).map((r) => r.headers['idempotency-key'])).toEqual(['order-1', 'order-1', 'order-1']);
  });

  it('cancels a hanging attempt at its attempt timeout (the socket closes) and retries it', async () => {
    upstream = await startUpstream((_req, n) => (n === 1 ? { hang: true } : { body: { late: false } }));
    // the second attempt must answer within the attempt timeout too: 100 ms was too short for a
    // loopback answer with stress --cpu 2 on the shared 2-core machine (load average ~30)
    const response = await client('svc', { timeout: { total: 10_000, attempt: 1_000 } }).get('/slow');
    expect(response).toMatchObject({ data: { late: false }, attempts: 2 });
    await upstream.socketClosed(1);
  });

  it('fails with code timeout when the total deadline passes, the request cancelled', async () => {
    upstream = await startUpstream(() => ({ hang: true }));
    const error = await failureOf(client('svc', { retry: false, timeout: { total: 100 } }).get('/slow'));
    expect(error).toMatchObject({ code: 'timeout', retryable: false, attempts: 1 });
    await upstream.socketClosed(1);
  });

  it('turns a refused connection into a retryable network failure after every attempt', async () => {
    upstream = await startUpstream(() => ({ status: 200 }));
    const url = upstream.url;
    await upstream.close();
    upstream = undefined;
    const refused = new HttpClient('gone', { baseUrl: url, retry: fastRetry });
    clients.push(refused);
    const error = await failureOf(refused.get('/'));
    expect(error).toMatchObject({ code: 'network', retryable: true, attempts: 3 });
  });

  it('opens a breaker per client and origin: once open, calls fail without being sent', async () => {
    upstream = await startUpstream(() => ({ status: 500 }));
    const breaking = client('svc', { retry: false, circuitBreaker: { strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 } });
    await failureOf(breaking.get('/a'));
    await failureOf(breaking.get('/a'));
    const error = await failureOf(breaking.get('/a'));
    expect(error).toMatchObject({ code: 'circuit_open', attempts: 0, retryable: false });
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(upstream.received).toHaveLength(2);
    expect(breaking.circuitBreakers()).toEqual([{ origin: upstream.url, snapshot: expect.objectContaining({ state: 'open' }) }]);
    // another client to the same origin has its own breaker
    await expect(client('other', { retry: false }).get('/a')).rejects.toMatchObject({ code: 'http_status' });
  });

  it('caps concurrency per origin: beyond the slots and the queue, a call is refused without being sent', async () => {
    upstream = await startUpstream(() => ({ body: {}, delayMs: 150 }));
    const capped = client('svc', { bulkhead: { maxConcurrent: 1, maxQueue: 1 } });
    const first = capped.get('/a');
    const queued = capped.get('/b');
    const refused = await failureOf(capped.get('/c'));
    expect(refused).toMatchObject({ code: 'bulkhead_rejected', attempts: 0 });
    await expect(first).resolves.toMatchObject({ status: 200 });
    await expect(queued).resolves.toMatchObject({ status: 200 });
    expect(upstream.received.map((r) => r.path)).toEqual(['/a', '/b']);
  });

  it('follows the caller signal: an abort cancels the request and fails with code aborted', async () => {
    upstream = await startUpstream(() => ({ hang: true }));
    const controller = new AbortController();
    const call = client('svc').get('/slow', { signal: controller.signal });
    await upstream.arrived(1);
    controller.abort(new Error('user went away'));
    expect(await failureOf(call)).toMatchObject({ code: 'aborted', attempts: 1 });
    await upstream.socketClosed(1);
    expect(upstream.received).toHaveLength(1);
  });

  it('refuses options that can never work at construction, naming the fix', () => {
    expect(() => new HttpClient('bad', { baseUrl: 'not a url' })).toThrow(/baseUrl "not a url".*absolute URL/);
    expect(() => new HttpClient('bad', { baseUrl: 'ftp://x' })).toThrow(/http: or https:/);
    expect(() => new HttpClient('bad', { baseUrl: 'http://x', rateLimit: { requestsPerSecond: 0 } })).toThrow(/requestsPerSecond 0/);
    expect(() => new HttpClient('bad', { baseUrl: 'http://x', timeout: { total: 100, attempt: 500 } })).toThrow(/attempt/);
    expect(() => new HttpClient('bad', { baseUrl: 'http://x', policy: 'nope' })).toThrow(/named policy "nope"/);
  });
});
