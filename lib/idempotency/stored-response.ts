import { HttpException, StreamableFile } from '@nestjs/common';
import { isObservable } from 'rxjs';
import { Stream } from 'node:stream';
import {
  applyProblemHeaders,
  isProblemDetailsException,
  ProblemDetailsException,
  type ProblemDetails,
} from '../http/problem-details.js';
import { isReplayableHeaderName } from './idempotency-options.interface.js';
import type { StoredResponse } from './idempotency-store.interface.js';

/**
 * Reserved entries of `StoredResponse.headers` that describe a stored *error* (they start with `:`,
 * which no HTTP header name can contain, so they never collide with a real header and are never
 * sent). An error replay re-throws the exception so exception filters render it as the first time.
 * @internal
 */
const KIND = ':kind';
const PROBLEM = ':problem';

/** Why a handler result cannot be stored. @internal */
export type NotStorable = { readonly storable: false; readonly reason: 'unreplayable' | 'too_large'; readonly detail: string };

/** @internal */
export type Storable = { readonly storable: true; readonly response: StoredResponse };

/** Anything Express or Fastify response-like. @internal */
type AnyResponse = Record<string, any>;

/**
 * Encodes a value returned by the handler (after inner interceptors) for replay. Strings are kept
 * as text, `undefined` as empty, everything else as JSON; streams, buffers, files, observables and
 * values JSON cannot represent are not storable.
 * @internal
 */
export function encodeValue(
  value: unknown,
  emissions: number,
  status: number,
  headers: Record<string, string>,
  maxBytes: number,
): Storable | NotStorable {
  if (emissions > 1) return unreplayable(`the handler's Observable emitted ${emissions} values`);
  const unreplayableKind = unreplayableKindOf(value);
  if (unreplayableKind) return unreplayable(`the handler returned ${unreplayableKind}`);
  let body: string | null;
  let bodyEncoding: StoredResponse['bodyEncoding'];
  if (value === undefined) {
    body = null;
    bodyEncoding = 'empty';
  } else if (typeof value === 'string') {
    body = value;
    bodyEncoding = 'text';
  } else {
    try {
      body = JSON.stringify(value) ?? null;
    } catch (error) {
      return unreplayable(`the body cannot be serialised as JSON (${(error as Error).message})`);
    }
    if (body === null) return unreplayable(`the handler returned a ${typeof value}, which JSON cannot represent`);
    bodyEncoding = 'json';
  }
  const bytes = body === null ? 0 : Buffer.byteLength(body, 'utf8');
  if (bytes > maxBytes) {
    return { storable: false, reason: 'too_large', detail: `the body has ${bytes} bytes, more than maxStoredBodyBytes (${maxBytes})` };
  }
  return { storable: true, response: { status, headers, body, bodyEncoding } };
}

/**
 * Encodes an `HttpException` thrown by the handler so that its replay re-throws the same status
 * and body.
 * @internal
 */
export function encodeError(error: HttpException, headers: Record<string, string>, maxBytes: number): Storable | NotStorable {
  const problem = isProblemDetailsException(error);
  const stored: Record<string, string> = { ...withoutContentType(headers), [KIND]: 'error' };
  if (problem) {
    stored[PROBLEM] = '1';
    for (const [name, value] of Object.entries(error.headers)) {
      if (isReplayableHeaderName(name)) stored[name.toLowerCase()] = value;
    }
  }
  let body: string;
  try {
    body = JSON.stringify(problem ? error.problem : error.getResponse()) ?? 'null';
  } catch (cause) {
    return unreplayable(`the error body cannot be serialised as JSON (${(cause as Error).message})`);
  }
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > maxBytes) {
    return { storable: false, reason: 'too_large', detail: `the error body has ${bytes} bytes, more than maxStoredBodyBytes (${maxBytes})` };
  }
  return { storable: true, response: { status: error.getStatus(), headers: stored, body, bodyEncoding: 'json' } };
}

/** Whether a stored response is a replayed error. @internal */
export function isStoredError(response: StoredResponse): boolean {
  return response.headers[KIND] === 'error';
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
  for (const [name, value] of Object.entries(stored.headers)) {
    if (!name.startsWith(':')) setResponseHeader(response, name, value);
  }
  const body = decodeBody(stored);
  if (isStoredError(stored)) {
    if (stored.headers[PROBLEM] === '1' && isProblemBody(body)) {
      const exception = new ProblemDetailsException({ ...body, status: stored.status });
      applyProblemHeaders(response, exception);
      return { kind: 'error', error: exception };
    }
    return { kind: 'error', error: new HttpException(body as string | Record<string, unknown>, stored.status) };
  }
  setResponseStatus(response, stored.status);
  return { kind: 'value', value: body };
}

function decodeBody(stored: StoredResponse): unknown {
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
  const status = response.statusCode ?? response.raw?.statusCode;
  return typeof status === 'number' ? status : 200;
}

/** The allow-listed headers already set on the response, lower-case names, values as strings. @internal */
export function replayableHeadersOf(response: AnyResponse, allowList: ReadonlySet<string>): Record<string, string> {
  const all = (typeof response.getHeaders === 'function' ? response.getHeaders() : {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(all)) {
    const lower = name.toLowerCase();
    if (value === undefined || !allowList.has(lower) || !isReplayableHeaderName(lower)) continue;
    headers[lower] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return headers;
}

/** Sets a header the platform-correct way (Fastify reply or Express/Node response). @internal */
export function setResponseHeader(response: AnyResponse, name: string, value: string): void {
  if (isFastifyReply(response)) {
    if (!response.raw.headersSent) response.header(name, value);
  } else if (typeof response.setHeader === 'function' && !response.headersSent) {
    response.setHeader(name, value);
  }
}

/** Sets the status the platform-correct way. @internal */
export function setResponseStatus(response: AnyResponse, status: number): void {
  if (isFastifyReply(response)) response.code(status);
  else if (typeof response.status === 'function') response.status(status);
  else response.statusCode = status;
}

function isFastifyReply(response: AnyResponse): boolean {
  return typeof response?.raw === 'object' && response.raw !== null && typeof response.code === 'function';
}

function unreplayableKindOf(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? `a ${typeof value}` : undefined;
  if (value instanceof StreamableFile) return 'a StreamableFile';
  if (value instanceof Stream) return 'a stream';
  if (typeof ReadableStream !== 'undefined' && value instanceof ReadableStream) return 'a ReadableStream';
  if (typeof Response !== 'undefined' && value instanceof Response) return 'a fetch Response';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return 'binary data';
  if (isObservable(value)) return 'an Observable';
  if (typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function') return 'an async iterable';
  if (typeof (value as { then?: unknown }).then === 'function') return 'a promise-like value';
  return undefined;
}

function isProblemBody(body: unknown): body is ProblemDetails {
  const candidate = body as Partial<ProblemDetails> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.code === 'string' && typeof candidate.detail === 'string';
}

function withoutContentType(headers: Record<string, string>): Record<string, string> {
  // The exception filter chooses the error's media type on replay, as it did the first time.
  const { 'content-type': _ignored, ...rest } = headers;
  return rest;
}

function unreplayable(detail: string): NotStorable {
  return { storable: false, reason: 'unreplayable', detail };
}
