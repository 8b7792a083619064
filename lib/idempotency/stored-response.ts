import { HttpException } from '@nestjs/common';
import { OutgoingMessage, ServerResponse } from 'node:http';
import {
  applyProblemHeaders,
  ProblemDetailsException,
  type ProblemDetails,
} from '../http/problem-details.js';
import { isReplayableHeaderName } from '../core/idempotency/idempotency-options.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import { STORED_KIND, STORED_PROBLEM } from '../core/idempotency/response-encoding.js';

export { encodeError, encodeValue, type NotStorable, type Storable } from '../core/idempotency/response-encoding.js';

/** `:`, which starts the reserved entries of a stored response's headers (never sent). */
const COLON = 0x3a;

/** Anything Express or Fastify response-like. */
type AnyResponse = Record<string, any>;

/** Whether a stored response is a replayed error. @internal */
export function isStoredError(response: StoredResponse): boolean {
  return response.headers[STORED_KIND] === 'error';
}

/**
 * Writes the stored status and headers to the response and returns what to hand back to Nest: the
 * body value (Nest serialises it as it did the first time), or the exception to re-throw.
 * @internal
 */
export function replayStoredResponse(
  response: AnyResponse,
  stored: StoredResponse,
): { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'error'; readonly error: HttpException } {
  const { headers } = stored;
  // no entries array per replay
  for (const name in headers) {
    if (name.charCodeAt(0) !== COLON) setResponseHeader(response, name, headers[name]!);
  }
  const body = decodeStoredBody(stored);
  if (isStoredError(stored)) {
    if (isStoredProblem(stored) && isProblemBody(body)) {
      const exception = new ProblemDetailsException({ ...body, status: stored.status });
      applyProblemHeaders(response, exception);
      return { kind: 'error', error: exception };
    }
    return { kind: 'error', error: new HttpException(body as string | Record<string, unknown>, stored.status) };
  }
  setResponseStatus(response, stored.status);
  return { kind: 'value', value: body };
}

/** Whether a stored error's body is a problem+json document. @internal */
export function isStoredProblem(response: StoredResponse): boolean {
  return response.headers[STORED_PROBLEM] === '1';
}

/** The stored body as the value the handler returned (or the error body it threw). @internal */
export function decodeStoredBody(stored: StoredResponse): unknown {
  switch (stored.bodyEncoding) {
    case 'empty':
      return undefined;
    case 'text':
      return stored.body ?? '';
    default:
      return stored.body === null ? undefined : JSON.parse(stored.body);
  }
}

/** Response status as set so far (by `@HttpCode()`, the default, or the handler through `@Res({ passthrough })`). @internal */
export function responseStatusOf(response: AnyResponse): number {
  const status = response instanceof ServerResponse ? response.statusCode : (response.statusCode ?? response.raw?.statusCode);
  return typeof status === 'number' ? status : 200;
}

// Node's own accessors of a response, called directly on Express's: Express swaps the prototype of
// every response, so looking a method up on one walks a chain the engine cannot cache (~1 µs per
// lookup, measured). Only reads and the headers-sent check go this way; setHeader itself is still
// looked up, so a middleware that wraps it on the instance keeps seeing every header.
const nodeHeaderNames = ServerResponse.prototype.getHeaderNames;
const nodeHeader = ServerResponse.prototype.getHeader;
const nodeHeadersSent = Object.getOwnPropertyDescriptor(OutgoingMessage.prototype, 'headersSent')!.get!;

/** The allow-listed headers already set on the response, lower-case names, values as strings. @internal */
export function replayableHeadersOf(response: AnyResponse, allowList: ReadonlySet<string>): Record<string, string> {
  const headers: Record<string, string> = {};
  if (response instanceof ServerResponse) {
    // Node keeps header names lower-case
    for (const name of nodeHeaderNames.call(response)) {
      if (!allowList.has(name) || !isReplayableHeaderName(name)) continue;
      const value = nodeHeader.call(response, name);
      if (value !== undefined) headers[name] = headerText(value);
    }
    return headers;
  }
  const all = (typeof response.getHeaders === 'function' ? response.getHeaders() : {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(all)) {
    const lower = name.toLowerCase();
    if (value === undefined || !allowList.has(lower) || !isReplayableHeaderName(lower)) continue;
    headers[lower] = headerText(value);
  }
  return headers;
}

function headerText(value: unknown): string {
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** Sets a header the platform-correct way (Fastify reply or Express/Node response). @internal */
export function setResponseHeader(response: AnyResponse, name: string, value: string): void {
  if (response instanceof ServerResponse) {
    if (!nodeHeadersSent.call(response)) response.setHeader(name, value);
  } else if (isFastifyReply(response)) {
    if (!response.raw.headersSent) response.header(name, value);
  } else if (typeof response.setHeader === 'function' && !response.headersSent) {
    response.setHeader(name, value);
  }
}

/** Sets the status the platform-correct way. @internal */
export function setResponseStatus(response: AnyResponse, status: number): void {
  // what Express's status() does, without looking the method up on its swapped prototype
  if (response instanceof ServerResponse) response.statusCode = status;
  else if (isFastifyReply(response)) response.code(status);
  else if (typeof response.status === 'function') response.status(status);
  else response.statusCode = status;
}

function isFastifyReply(response: AnyResponse): boolean {
  // Express's response is the Node one: told apart without looking up `raw`, which it lacks (a
  // missing property is a slow lookup there, as Express swaps the prototype of every response)
  if (response instanceof ServerResponse) return false;
  return typeof response?.raw === 'object' && response.raw !== null && typeof response.code === 'function';
}

/** Whether a stored error body is a problem document (a `code` and a `detail`). @internal */
export function isProblemBody(body: unknown): body is ProblemDetails {
  const candidate = body as Partial<ProblemDetails> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.code === 'string' && typeof candidate.detail === 'string';
}

