import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { assertOk, withDeadline } from 'nest-resilience';
import type { Response as TestResponse } from 'supertest';

/**
 * Calls a dependency the way the timeouts guide tells users to: the attempt's signal and deadline headers,
 * and `assertOk`, so a non-2xx answer becomes an `UpstreamHttpError` (status, body, `Retry-After`).
 */
export async function fetchUpstream(url: string): Promise<unknown> {
  const response = await assertOk(await fetch(url, withDeadline()));
  return response.json();
}

/**
 * A loopback URL nothing listens on: a port the OS handed out and that was closed again, so a
 * connection to it is refused at once (ECONNREFUSED).
 */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  return `http://127.0.0.1:${port}`;
}

/** Asserts an RFC 9457 answer: the status, `Content-Type: application/problem+json`, and `code` (one of `codes`). */
export function expectProblem(response: TestResponse, status: number, ...codes: string[]): void {
  expect({ status: response.status, contentType: response.headers['content-type'], body: response.body }).toMatchObject({
    status,
    contentType: expect.stringMatching(/^application\/problem\+json/),
    body: { status },
  });
  expect(codes).toContain(response.body.code);
}

/** The `Retry-After` header as whole seconds; fails unless it is a positive integer. */
export function retryAfterSeconds(response: TestResponse): number {
  const header = response.headers['retry-after'];
  expect(String(header), 'the Retry-After header').toMatch(/^[1-9]\d*$/);
  return Number(header);
}

/** Everything the client received: the raw body text and every header value. */
export function everythingSent(response: TestResponse): string {
  return `${response.text ?? ''}\n${JSON.stringify(response.body ?? null)}\n${JSON.stringify(response.headers)}`;
}
