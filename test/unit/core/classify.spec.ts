import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../lib/testing/index.js';
import { isTransientError, statusOf } from '../../../lib/core/classify.js';
import { retryAfterMsOf } from '../../../lib/core/retry-after.js';
import { isBreakerFailure } from '../../../lib/core/validate.js';
import {
  AttemptTimeoutError,
  BulkheadRejectedError,
  CircuitOpenError,
  DeadlineExceededError,
  OperationAbortedError,
  RetriesExhaustedError,
} from '../../../lib/core/errors.js';
import { assertOk, isUpstreamHttpError, UpstreamContractError, UpstreamError, UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';

const withCode = (code: string) => Object.assign(new Error(code), { code });

/** Mimics Nest's HttpException without importing Nest into the core. */
class FakeHttpException extends Error {
  constructor(
    private readonly body: unknown,
    private readonly httpStatus: number,
  ) {
    super('http');
  }
  getStatus() {
    return this.httpStatus;
  }
  getResponse() {
    return this.body;
  }
}

describe('isTransientError', () => {
  it.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT'])(
    'retries the network code %s',
    (code) => expect(isTransientError(withCode(code))).toBe(true),
  );

  it('finds the code in the cause of fetch failures', () => {
    const fetchFailure = new TypeError('fetch failed', { cause: withCode('ECONNREFUSED') });
    expect(isTransientError(fetchFailure)).toBe(true);
    expect(isTransientError(new TypeError('fetch failed', { cause: new Error('other') }))).toBe(false);
  });

  it('finds codes inside an AggregateError (happy eyeballs)', () => {
    expect(isTransientError(new AggregateError([withCode('ECONNREFUSED')]))).toBe(true);
  });

  it('does not retry undici aborts or misuse', () => {
    expect(isTransientError(withCode('UND_ERR_ABORTED'))).toBe(false);
    expect(isTransientError(withCode('UND_ERR_INVALID_ARG'))).toBe(false);
    expect(isTransientError(withCode('ERR_INVALID_URL'))).toBe(false);
  });

  it.each([408, 429, 500, 502, 503, 504])('retries HTTP %i', (status) => {
    expect(isTransientError(new UpstreamHttpError(status))).toBe(true);
    expect(isTransientError({ statusCode: status })).toBe(true);
    expect(isTransientError(Object.assign(new Error('axios'), { response: { status } }))).toBe(true);
    expect(isTransientError(new FakeHttpException({}, status))).toBe(true);
  });

  it.each([400, 401, 403, 404, 409, 422])('never retries HTTP %i', (status) => {
    expect(isTransientError(new UpstreamHttpError(status))).toBe(false);
    expect(isTransientError(new FakeHttpException({}, status))).toBe(false);
  });

  it('lets a non-transient status win over a transient code', () => {
    expect(isTransientError(Object.assign(withCode('ECONNRESET'), { status: 400 }))).toBe(false);
  });

  it('retries attempt timeouts and none of the other library errors', () => {
    expect(isTransientError(new AttemptTimeoutError(10))).toBe(true);
    expect(isTransientError(new CircuitOpenError('k', 1))).toBe(false);
    expect(isTransientError(new BulkheadRejectedError('k', 1))).toBe(false);
    expect(isTransientError(new DeadlineExceededError(10))).toBe(false);
    expect(isTransientError(new OperationAbortedError())).toBe(false);
    expect(isTransientError(new RetriesExhaustedError(3, withCode('ECONNRESET')))).toBe(false);
  });

  it('never retries an AbortError from the caller, nor plain errors and non-objects', () => {
    const controller = new AbortController();
    controller.abort();
    expect(isTransientError(controller.signal.reason)).toBe(false);
    expect(isTransientError(Object.assign(withCode('ECONNRESET'), { name: 'AbortError' }))).toBe(false);
    expect(isTransientError(new Error('boom'))).toBe(false);
    expect(isTransientError('ECONNRESET')).toBe(false);
    expect(isTransientError(undefined)).toBe(false);
  });
});

describe('statusOf', () => {
  it('reads status, statusCode, response.status and getStatus()', () => {
    expect(statusOf({ status: 503 })).toBe(503);
    expect(statusOf({ statusCode: 404 })).toBe(404);
    expect(statusOf({ response: { status: 429 } })).toBe(429);
    expect(statusOf(new FakeHttpException({}, 418))).toBe(418);
    expect(statusOf({ status: 'oops' })).toBeUndefined();
    expect(statusOf({ status: 42 })).toBeUndefined();
    expect(statusOf(null)).toBeUndefined();
  });
});

describe('retryAfterMsOf', () => {
  const now = Date.UTC(2025, 5, 1, 8, 0, 0);

  it('prefers the library retryAfterMs', () => {
    expect(retryAfterMsOf(new CircuitOpenError('k', 1234), now)).toBe(1234);
  });

  it('parses delta-seconds from plain header objects, case-insensitively', () => {
    expect(retryAfterMsOf({ headers: { 'Retry-After': '7' } }, now)).toBe(7000);
    expect(retryAfterMsOf({ headers: { 'retry-after': ['3'] } }, now)).toBe(3000);
  });

  it('parses an HTTP-date relative to now', () => {
    const headers = new Headers({ 'Retry-After': new Date(now + 4000).toUTCString() });
    expect(retryAfterMsOf({ response: { headers } }, now)).toBe(4000);
  });

  it('reads axios-style response.headers objects', () => {
    expect(retryAfterMsOf({ response: { status: 503, headers: { 'retry-after': '1' } } }, now)).toBe(1000);
  });

  it('reads retry-after-ms', () => {
    expect(retryAfterMsOf({ headers: { 'retry-after-ms': '250' } }, now)).toBe(250);
  });

  it('reads retryAfter from an HttpException response object', () => {
    expect(retryAfterMsOf(new FakeHttpException({ message: 'slow down', retryAfter: 2 }, 429), now)).toBe(2000);
    expect(retryAfterMsOf(new FakeHttpException('text body', 429), now)).toBeUndefined();
  });

  it('returns undefined for invalid, negative or past values', () => {
    expect(retryAfterMsOf({ headers: { 'retry-after': 'soon' } }, now)).toBeUndefined();
    expect(retryAfterMsOf({ headers: { 'retry-after': '-5' } }, now)).toBeUndefined();
    expect(retryAfterMsOf({ headers: { 'retry-after': '2024' } }, now)).toBe(2_024_000);
    expect(retryAfterMsOf({ headers: { 'retry-after': new Date(now - 1000).toUTCString() } }, now)).toBeUndefined();
    expect(retryAfterMsOf({ retryAfterMs: -1 }, now)).toBeUndefined();
    expect(retryAfterMsOf({}, now)).toBeUndefined();
    expect(retryAfterMsOf(undefined, now)).toBeUndefined();
  });
});

describe('UpstreamHttpError and assertOk', () => {
  it('returns a 2xx response untouched', async () => {
    const response = new Response('fine', { status: 200 });
    expect(await assertOk(response)).toBe(response);
  });

  it('throws UpstreamHttpError with status, parsed JSON body and Retry-After', async () => {
    const clock = new FakeClock(Date.UTC(2025, 0, 1));
    const response = new Response(JSON.stringify({ error: 'overloaded' }), {
      status: 503,
      headers: { 'content-type': 'application/json', 'retry-after': '5' },
    });
    const error = await assertOk(response, clock).catch((caught: unknown) => caught);
    expect(isUpstreamHttpError(error)).toBe(true);
    expect(error).toBeInstanceOf(UpstreamHttpError);
    expect(error).toMatchObject({ status: 503, retryAfterMs: 5000, body: { error: 'overloaded' } });
    expect(isTransientError(error)).toBe(true);
    expect((error as Error).message).toBe('The dependency answered with HTTP status 503.');
  });

  it('keeps a text body and no hint when there is none', async () => {
    const error = await assertOk(new Response('nope', { status: 404 })).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status: 404, body: 'nope' });
    expect((error as UpstreamHttpError).retryAfterMs).toBeUndefined();
    expect(isUpstreamHttpError(new Error('x'))).toBe(false);
  });
});

describe('UpstreamError in the default classifiers', () => {
  it('is retried when its retryable says so, whatever its code', () => {
    expect(isTransientError(new UpstreamHttpError(503))).toBe(true);
    expect(isTransientError(new UpstreamHttpError(404))).toBe(false);
    expect(isTransientError(new UpstreamError('network', 'reset', { retryable: true }))).toBe(true);
    expect(isTransientError(new UpstreamError('timeout', 'deadline', { retryable: false }))).toBe(false);
    expect(isTransientError(new UpstreamContractError(200, [{ path: '$.text', message: 'x' }]))).toBe(false);
  });

  it('counts against a breaker only when the call reached the dependency', () => {
    expect(isBreakerFailure(new UpstreamHttpError(502))).toBe(true);
    expect(isBreakerFailure(new UpstreamHttpError(429))).toBe(true);
    expect(isBreakerFailure(new UpstreamHttpError(404))).toBe(false);
    expect(isBreakerFailure(new UpstreamContractError(200, []))).toBe(true);
    expect(isBreakerFailure(new UpstreamError('network', 'reset', { retryable: true }))).toBe(true);
    for (const code of ['rate_limited', 'circuit_open', 'bulkhead_rejected', 'aborted'] as const) {
      expect(isBreakerFailure(new UpstreamError(code, 'not sent'))).toBe(false);
    }
  });
});
