import { NotFoundException } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { AttemptTimeoutError, BulkheadRejectedError, CircuitOpenError, DeadlineExceededError, OperationAbortedError, RetriesExhaustedError } from '../../../lib/core/errors.js';
import { UpstreamContractError, UpstreamError, UpstreamHttpError } from '../../../lib/core/upstream-http.error.js';
import { IdempotencyRequestInProgressError } from '../../../lib/core/idempotency/idempotency-core.errors.js';
import { resolveResilienceOptions } from '../../../lib/engine/resilience-options.resolver.js';
import { FakeClock } from '../../../lib/testing/fake-clock.js';
import { ProblemDetailsException } from '../../../lib/http/problem-details.js';
import { ResilienceErrorMapper } from '../../../lib/http/resilience-error.mapper.js';

const clock = new FakeClock(Date.parse('2026-12-04T12:00:00Z'));
const options = resolveResilienceOptions({ clock, problemTypeBase: 'https://errors.example/' });

function problemOf(mapped: unknown) {
  expect(mapped).toBeInstanceOf(ProblemDetailsException);
  const exception = mapped as ProblemDetailsException;
  expect(exception.getStatus()).toBe(exception.problem.status);
  return { ...exception.problem, headers: exception.headers };
}

describe('ResilienceErrorMapper', () => {
  const mapper = new ResilienceErrorMapper(options);

  it('answers an HttpClient contract break with 502 upstream_contract listing the paths, never the values', () => {
    const issues = Array.from({ length: 12 }, (_, i) => ({ path: `$.items[${i}].id`, message: `Expected number, received "secret-${i}"` }));
    const problem = problemOf(mapper.map(new UpstreamContractError(200, issues, { url: 'http://10.0.0.5/reports' })));
    expect(problem).toMatchObject({ status: 502, code: 'upstream_contract' });
    expect(problem.detail).toContain('$.items[0].id, $.items[1].id');
    expect(problem.detail).toContain('and 2 more');
    expect(problem.detail).not.toMatch(/secret|10\.0\.0\.5/);
  });

  it('answers each HttpClient failure like the library error it wraps, or as a dependency failure', () => {
    const wrap = (code: ConstructorParameters<typeof UpstreamError>[0], cause?: unknown, extra: Record<string, unknown> = {}) =>
      new UpstreamError(code, 'internal message with http://10.0.0.5', { cause, ...extra });
    expect(problemOf(mapper.map(wrap('timeout', new DeadlineExceededError(1_000))))).toMatchObject({ status: 503, code: 'timeout' });
    expect(problemOf(mapper.map(wrap('timeout', new AttemptTimeoutError(100, 3))))).toMatchObject({ status: 503, code: 'timeout' });
    expect(problemOf(mapper.map(wrap('circuit_open', new CircuitOpenError('http:a@x', 4_000))))).toMatchObject({ code: 'circuit_open', headers: { 'retry-after': '4' } });
    expect(problemOf(mapper.map(wrap('bulkhead_rejected', new BulkheadRejectedError('http:a@x', 1_000))))).toMatchObject({ code: 'bulkhead_rejected' });
    expect(problemOf(mapper.map(wrap('aborted', new OperationAbortedError())))).toMatchObject({ code: 'aborted' });
    expect(problemOf(mapper.map(wrap('rate_limited', undefined, { retryAfterMs: 9_000 })))).toMatchObject({ status: 503, code: 'upstream_unavailable', headers: { 'retry-after': '9' } });
    expect(problemOf(mapper.map(wrap('network', Object.assign(new Error('reset'), { code: 'ECONNRESET' }), { retryable: true })))).toMatchObject({ status: 503, code: 'upstream_unavailable' });
  });

  it('answers a transient dependency failure with 503 upstream_unavailable and its Retry-After, read on the module clock', () => {
    // an HTTP-date hint 30 s after the fake clock's now (an axios-like error carrying the response)
    const error = Object.assign(new Error('busy'), { response: { status: 503, headers: { 'retry-after': new Date(clock.now() + 30_000).toUTCString() } } });
    expect(problemOf(mapper.map(error))).toMatchObject({
      status: 503,
      code: 'upstream_unavailable',
      type: 'https://errors.example/upstream_unavailable',
      headers: { 'retry-after': '30' },
    });
  });

  it('answers a dependency 4xx with 502 upstream_rejected, and never puts the dependency’s message in the detail', () => {
    const problem = problemOf(mapper.map(new UpstreamHttpError(400, { url: 'http://10.0.0.5/internal', body: { secret: 'x' } })));
    expect(problem).toMatchObject({ status: 502, code: 'upstream_rejected' });
    expect(problem.detail).not.toContain('10.0.0.5');
  });

  it('maps exhausted retries by their last error, and an open circuit with its Retry-After', () => {
    expect(problemOf(mapper.map(new RetriesExhaustedError(3, new UpstreamHttpError(503, { retryAfterMs: 2_000 }))))).toMatchObject({
      status: 503,
      code: 'upstream_unavailable',
      headers: { 'retry-after': '2' },
    });
    expect(problemOf(mapper.map(new CircuitOpenError('payments', 4_500)))).toMatchObject({ status: 503, code: 'circuit_open', headers: { 'retry-after': '5' } });
  });

  it('renders the idempotency core’s errors with their status, title and Retry-After', () => {
    expect(problemOf(mapper.map(new IdempotencyRequestInProgressError('Idempotency-Key', 3_000)))).toMatchObject({
      status: 409,
      code: 'idempotency_request_in_progress',
      title: 'A request is outstanding for this Idempotency-Key',
      headers: { 'Retry-After': '3' },
    });
  });

  it('passes your own HttpException and unknown errors through untouched', () => {
    const notFound = new NotFoundException('no such report');
    const bug = new TypeError('undefined is not a function');
    expect(mapper.map(notFound)).toBe(notFound);
    expect(mapper.map(bug)).toBe(bug);
  });

  it('lets a subclass change one answer through a protected hook', () => {
    class PartnerMapper extends ResilienceErrorMapper {
      protected override upstreamRejected(error: unknown) {
        return this.problem({ status: 424, code: 'dependency_refused', detail: 'A partner refused the request.' }, error);
      }
    }
    expect(problemOf(new PartnerMapper(options).map(new UpstreamHttpError(404)))).toMatchObject({ status: 424, code: 'dependency_refused' });
  });

  it('refuses an errorMapper option that is not a mapper, naming the fix', () => {
    expect(() => resolveResilienceOptions({ errorMapper: {} as never })).toThrow('Pass a subclass of ResilienceErrorMapper');
  });
});
