import { BadRequestException, HttpException } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import {
  AttemptTimeoutError,
  BulkheadRejectedError,
  CircuitOpenError,
  DeadlineExceededError,
  OperationAbortedError,
  RetriesExhaustedError,
} from '../../../lib/core/errors.js';
import {
  applyProblemHeaders,
  isProblemDetailsException,
  ProblemDetailsException,
  toHttpError,
} from '../../../lib/http/problem-details.js';

const mapping = { timeoutStatus: 503, bulkheadRejectStatus: 503, typeBase: 'https://example.test/p/' };

function problemOf(error: unknown, options = mapping) {
  const mapped = toHttpError(error, options);
  if (!isProblemDetailsException(mapped)) throw new Error('expected a problem');
  return mapped;
}

describe('ProblemDetailsException', () => {
  it('carries an RFC 9457 body with a stable code and type', () => {
    const problem = new ProblemDetailsException({ status: 409, code: 'conflict', detail: 'Busy.', headers: { 'Retry-After': '2' } });
    expect(problem.getStatus()).toBe(409);
    expect(problem.getResponse()).toEqual({
      type: 'https://nest-resilience.dev/problems/conflict',
      title: 'Conflict',
      status: 409,
      detail: 'Busy.',
      code: 'conflict',
    });
    expect(isProblemDetailsException(problem)).toBe(true);
    expect(isProblemDetailsException(new BadRequestException())).toBe(false);
  });
});

describe('toHttpError', () => {
  it('maps deadlines and attempt timeouts to the configured status with code "timeout"', () => {
    expect(problemOf(new DeadlineExceededError(100)).problem).toMatchObject({ status: 503, code: 'timeout', type: 'https://example.test/p/timeout' });
    expect(problemOf(new AttemptTimeoutError(50), { ...mapping, timeoutStatus: 504 }).problem).toMatchObject({ status: 504, code: 'timeout' });
  });

  it('maps an open circuit to 503 with Retry-After in whole seconds, rounded up', () => {
    const problem = problemOf(new CircuitOpenError('payments', 1_200));
    expect(problem.problem).toMatchObject({ status: 503, code: 'circuit_open' });
    expect(problem.headers).toEqual({ 'retry-after': '2' });
  });

  it('maps a bulkhead rejection to the route status with Retry-After', () => {
    const problem = problemOf(new BulkheadRejectedError('render', 10), { ...mapping, bulkheadRejectStatus: 429 });
    expect(problem.problem).toMatchObject({ status: 429, code: 'bulkhead_rejected' });
    expect(problem.headers).toEqual({ 'retry-after': '1' });
  });

  it('maps exhausted retries by their last error when it is known, else to 503 retries_exhausted', () => {
    const upstream = new HttpException('upstream down', 502);
    expect(toHttpError(new RetriesExhaustedError(3, upstream), mapping)).toBe(upstream);
    expect(problemOf(new RetriesExhaustedError(3, new AttemptTimeoutError(10, 3))).problem.code).toBe('timeout');
    expect(problemOf(new RetriesExhaustedError(3, new Error('ECONNRESET'))).problem).toMatchObject({ status: 503, code: 'retries_exhausted' });
  });

  it('maps a caller abort to 503 aborted and leaves other errors unchanged', () => {
    expect(problemOf(new OperationAbortedError('gone')).problem).toMatchObject({ status: 503, code: 'aborted' });
    const plain = new Error('boom');
    expect(toHttpError(plain, mapping)).toBe(plain);
    const http = new BadRequestException();
    expect(toHttpError(http, mapping)).toBe(http);
  });
});

describe('applyProblemHeaders', () => {
  const problem = new ProblemDetailsException({ status: 503, code: 'circuit_open', detail: 'Open.', headers: { 'Retry-After': '5' } });

  it('sets Content-Type and the extra headers on a Node or Express response', () => {
    const headers: Record<string, string> = {};
    applyProblemHeaders({ headersSent: false, setHeader: (name: string, value: string) => (headers[name] = value) }, problem);
    expect(headers).toEqual({ 'content-type': 'application/problem+json', 'retry-after': '5' });
  });

  it('sets them through a Fastify reply', () => {
    const headers: Record<string, string> = {};
    const reply = { raw: { headersSent: false, setHeader: () => undefined }, header: (name: string, value: string) => (headers[name] = value) };
    applyProblemHeaders(reply, problem);
    expect(headers).toEqual({ 'content-type': 'application/problem+json', 'retry-after': '5' });
  });

  it('does nothing once the headers were sent', () => {
    const headers: Record<string, string> = {};
    applyProblemHeaders({ headersSent: true, setHeader: (name: string, value: string) => (headers[name] = value) }, problem);
    expect(headers).toEqual({});
  });
});
