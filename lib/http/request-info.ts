import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';

/**
 * What the library reads from an HTTP request, the same way on Express and Fastify.
 * @internal
 */
export interface HttpRequestInfo {
  /** Upper-case method, e.g. `GET`. */
  readonly method: string;
  /** `METHOD /route/pattern` (the route template when the platform knows it, else the path). */
  readonly route: string;
  /** pino-http's `req.id`, else the `x-request-id` header, else Fastify's request id. */
  readonly requestId?: string;
  /** Which platform served the request. */
  readonly platform: 'express' | 'fastify';
}

type AnyRequest = Record<string, any>;

/** @internal whether `request` is a Fastify request (it wraps the Node request in `raw`). */
export function isFastifyRequest(request: unknown): boolean {
  // Express's request is the Node one (see rawResponseOf on why this check comes first)
  if (request instanceof IncomingMessage) return false;
  const candidate = request as AnyRequest | undefined;
  return !!candidate && typeof candidate.raw === 'object' && candidate.raw !== null && 'routeOptions' in candidate;
}

/** @internal the Node `IncomingMessage` behind an Express or Fastify request. */
export function rawRequestOf(request: unknown): IncomingMessage {
  const candidate = request as AnyRequest;
  return (isFastifyRequest(candidate) ? candidate.raw : candidate) as IncomingMessage;
}

/** @internal the Node `ServerResponse` behind an Express response or a Fastify reply. */
export function rawResponseOf(response: unknown): ServerResponse {
  // Express's response is the Node one; checked first because a property missing on it is a slow
  // lookup (Express swaps the prototype of every response)
  if (response instanceof ServerResponse) return response;
  const candidate = response as AnyRequest;
  return (candidate?.raw && typeof candidate.raw.setHeader === 'function' ? candidate.raw : candidate) as ServerResponse;
}

/** @internal the request id: pino-http's `req.id`, the `x-request-id` header, then Fastify's id. */
export function requestIdOf(request: unknown): string | undefined {
  const candidate = request as AnyRequest;
  const raw = rawRequestOf(candidate) as AnyRequest;
  const fromLogger = raw?.id;
  if (typeof fromLogger === 'string' || typeof fromLogger === 'number') return String(fromLogger);
  const header = raw?.headers?.['x-request-id'];
  if (typeof header === 'string' && header.length > 0) return header;
  if (Array.isArray(header) && header.length > 0) return header[0];
  if (raw === candidate) return undefined;
  const fastifyId = candidate?.id;
  if (typeof fastifyId === 'string' || typeof fastifyId === 'number') return String(fastifyId);
  return undefined;
}

/** @internal the route template (`/reports/:id`), or the path without query when unknown. */
export function routePathOf(request: unknown): string {
  const candidate = request as AnyRequest;
  if (isFastifyRequest(candidate)) {
    const url = candidate.routeOptions?.url;
    if (typeof url === 'string') return url;
  } else {
    const path = candidate?.route?.path;
    if (typeof path === 'string') return `${candidate.baseUrl ?? ''}${path}`;
  }
  const url: string = candidate?.originalUrl ?? rawRequestOf(candidate)?.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** @internal the upper-case method of an Express or Fastify request. */
export function httpMethodOf(request: unknown): string {
  return (rawRequestOf(request)?.method ?? 'GET').toUpperCase();
}

/**
 * Method, route, request id and platform of an Express or Fastify request.
 * @internal
 */
export function httpRequestInfo(request: unknown): HttpRequestInfo {
  const method = httpMethodOf(request);
  return {
    method,
    route: `${method} ${routePathOf(request)}`,
    requestId: requestIdOf(request),
    platform: isFastifyRequest(request) ? 'fastify' : 'express',
  };
}

/**
 * The calls waiting on one keep-alive socket: nearly always one at a time, so a slot, and a short
 * list for pipelined requests (an array: a `Set` of functions would hash each one).
 */
interface SocketWatch {
  current: (() => void) | undefined;
  others: (() => void)[] | undefined;
}

const socketWatches = new WeakMap<Socket, SocketWatch>();

/**
 * Calls `onClose` once when the client goes away before the response finished. Returns a function
 * that stops watching; call it when the work is done.
 *
 * On HTTP/1 the watch sits on the connection: one `close` listener per socket, shared by every
 * request a keep-alive connection carries, so a request costs a slot, not a listener added and
 * removed (an `EventEmitter` change on the response is the costliest part of a cheap request).
 * A socket already closed calls `onClose` at once. Other responses (HTTP/2 streams) are watched
 * through their own `close` event.
 * @internal
 */
export function onClientDisconnect(response: unknown, onClose: () => void): () => void {
  const raw = rawResponseOf(response);
  const listener = () => {
    if (!raw.writableFinished) onClose();
  };
  // an HTTP/1 response (an HTTP/2 compatibility response is not one) on a live connection
  if (raw instanceof ServerResponse && raw.socket instanceof Socket) return watchSocketClose(raw.socket, listener);
  if (!raw || typeof raw.once !== 'function') return () => undefined;
  raw.once('close', listener);
  return () => raw.removeListener('close', listener);
}

/**
 * Whether the client of `response` is gone already: what {@link onClientDisconnect} would report
 * at once (an HTTP/1 connection closed before the response finished). Other responses never report
 * it before an event, so they are never gone here.
 * @internal
 */
export function clientGone(response: unknown): boolean {
  const raw = rawResponseOf(response);
  return raw instanceof ServerResponse && raw.socket instanceof Socket && raw.socket.destroyed && !raw.writableFinished;
}

/**
 * Calls `onClose` once when `socket` closes (at once when it is closed already). Every call waiting
 * on one socket shares a single `close` listener. Returns a function that stops watching.
 * @internal
 */
export function watchSocketClose(socket: Socket, onClose: () => void): () => void {
  if (socket.destroyed) {
    onClose();
    return () => undefined;
  }
  let watch = socketWatches.get(socket);
  if (watch === undefined) {
    const created: SocketWatch = { current: undefined, others: undefined };
    socket.once('close', () => {
      const { current, others } = created;
      created.current = undefined;
      created.others = undefined;
      current?.();
      if (others !== undefined) for (const waiting of others) waiting();
    });
    socketWatches.set(socket, created);
    watch = created;
  }
  const active = watch;
  if (active.current === undefined) active.current = onClose;
  else (active.others ??= []).push(onClose);
  return () => {
    if (active.current === onClose) {
      active.current = undefined;
      return;
    }
    const others = active.others;
    const index = others === undefined ? -1 : others.indexOf(onClose);
    if (index !== -1) others!.splice(index, 1);
  };
}

/**
 * The request id and route of `request`, computed on first use (most requests never need them).
 * @internal
 */
export function requestInfoSource(request: unknown): RequestInfoSource {
  return new HttpRequestInfoSource(request);
}

/**
 * {@link requestInfoSource}'s object: a class, not a literal with a closure, so V8 never decides to
 * allocate it (and what it holds) in old space for every request.
 */
class HttpRequestInfoSource implements RequestInfoSource {
  private cached: RequestInfo | undefined;

  constructor(readonly request: unknown) {}

  info(): RequestInfo {
    let info = this.cached;
    if (info === undefined) {
      const { requestId, route } = httpRequestInfo(this.request);
      info = { requestId, route };
      this.cached = info;
    }
    return info;
  }
}
