import { Stream } from 'node:stream';
import { isReplayableHeaderName } from './idempotency-options.interface.js';
import type { StoredResponse } from './idempotency-store.interface.js';

/**
 * Reserved entries of `StoredResponse.headers` that describe a stored *error* (they start with `:`,
 * which no HTTP header name can contain, so they never collide with a real header and are never
 * sent). An error replay re-throws the exception so exception filters render it as the first time.
 * @internal
 */
export const STORED_KIND = ':kind';
/** @internal marks a stored error whose body is a problem+json document. */
export const STORED_PROBLEM = ':problem';
/** @internal `STORED_KIND` of an outcome kept without its body (replays answer `idempotency_response_not_kept`). */
export const STORED_NOT_KEPT = 'not_kept';
/** @internal size in bytes of the body that was not kept. */
export const STORED_BYTES = ':bytes';
/** @internal why the body was not kept: `too_large` (over `maxResponseBytes` or the store's room) or `unreplayable` (a stream, a file…). */
export const STORED_REASON = ':reason';

/**
 * The outcome of `response` without its body, for a body that is too large to keep or cannot be
 * replayed: the status and the replayable headers (a `Location` still tells the client where the
 * result is) are kept, so the key completes and the handler never runs again for it. `bytes` is
 * the size of the body not kept (0 when unknown).
 * @internal
 */
export function responseWithoutBody(response: StoredResponse, bytes: number, reason: 'too_large' | 'unreplayable' = 'too_large'): StoredResponse {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    // the replay's body is a problem document: the original media type and error markers do not apply
    if (!name.startsWith(':') && name !== 'content-type') headers[name] = value;
  }
  headers[STORED_KIND] = STORED_NOT_KEPT;
  headers[STORED_BYTES] = String(bytes);
  headers[STORED_REASON] = reason;
  return { status: response.status, headers, body: null, bodyEncoding: 'empty' };
}

/**
 * What the encoder needs of an HTTP error (a Nest `HttpException`, duck-typed so this file loads
 * without Nest); a problem+json exception also carries `problem` and `headers`.
 * @internal
 */
export interface HttpErrorLike {
  getStatus(): number;
  getResponse(): unknown;
  readonly problem?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Whether `error` carries an HTTP status and body the way Nest's `HttpException` does. @internal */
export function isHttpErrorLike(error: unknown): error is HttpErrorLike {
  const candidate = error as Partial<HttpErrorLike> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.getStatus === 'function' && typeof candidate.getResponse === 'function';
}

/** Why a handler result's body cannot be kept; `bytes` is its size when known. @internal */
export type NotStorable = { readonly storable: false; readonly reason: 'unreplayable' | 'too_large'; readonly detail: string; readonly bytes?: number };

/** @internal */
export type Storable = { readonly storable: true; readonly response: StoredResponse };

/** Anything Express or Fastify response-like. @internal */
type AnyResponse = Record<string, any>;

/**
 * Encodes a value returned by the handler for replay. Strings are kept
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
    return { storable: false, reason: 'too_large', detail: `the body has ${bytes} bytes, more than maxResponseBytes (${maxBytes})`, bytes };
  }
  return { storable: true, response: { status, headers, body, bodyEncoding } };
}

/**
 * Encodes an `HttpException` thrown by the handler so that its replay re-throws the same status
 * and body.
 * @internal
 */
export function encodeError(error: HttpErrorLike, headers: Record<string, string>, maxBytes: number): Storable | NotStorable {
  const problem = typeof error.problem === 'object' && error.problem !== null && typeof error.headers === 'object';
  const stored: Record<string, string> = { ...withoutContentType(headers), [STORED_KIND]: 'error' };
  if (problem) {
    stored[STORED_PROBLEM] = '1';
    for (const [name, value] of Object.entries(error.headers ?? {})) {
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
    return { storable: false, reason: 'too_large', detail: `the error body has ${bytes} bytes, more than maxResponseBytes (${maxBytes})`, bytes };
  }
  return { storable: true, response: { status: error.getStatus(), headers: stored, body, bodyEncoding: 'json' } };
}

function unreplayableKindOf(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? `a ${typeof value}` : undefined;
  if (typeof (value as { getStream?: unknown }).getStream === 'function' && value.constructor?.name === 'StreamableFile') return 'a StreamableFile';
  if (value instanceof Stream) return 'a stream';
  if (typeof ReadableStream !== 'undefined' && value instanceof ReadableStream) return 'a ReadableStream';
  if (typeof Response !== 'undefined' && value instanceof Response) return 'a fetch Response';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return 'binary data';
  if (typeof (value as { subscribe?: unknown }).subscribe === 'function' && typeof (value as { pipe?: unknown }).pipe === 'function') return 'an Observable';
  if (typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function') return 'an async iterable';
  if (typeof (value as { then?: unknown }).then === 'function') return 'a promise-like value';
  return undefined;
}

function withoutContentType(headers: Record<string, string>): Record<string, string> {
  // The exception filter chooses the error's media type on replay, as it did the first time.
  const { 'content-type': _ignored, ...rest } = headers;
  return rest;
}

function unreplayable(detail: string): NotStorable {
  return { storable: false, reason: 'unreplayable', detail };
}
