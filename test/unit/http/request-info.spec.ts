import { EventEmitter } from 'node:events';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpRequestInfo, onClientDisconnect, rawResponseOf } from '../../../lib/http/request-info.js';

describe('httpRequestInfo', () => {
  it('reads an Express request: route template, pino-http id', () => {
    const req = { method: 'get', url: '/reports/7?x=1', originalUrl: '/reports/7?x=1', baseUrl: '', route: { path: '/reports/:id' }, id: 12, headers: {} };
    expect(httpRequestInfo(req)).toEqual({ method: 'GET', route: 'GET /reports/:id', requestId: '12', platform: 'express' });
  });

  it('falls back to the x-request-id header and the path without query', () => {
    const req = { method: 'POST', url: '/jobs?dry=1', headers: { 'x-request-id': 'abc' } };
    expect(httpRequestInfo(req)).toEqual({ method: 'POST', route: 'POST /jobs', requestId: 'abc', platform: 'express' });
  });

  it('reads a Fastify request through its raw request and route options', () => {
    const raw = { method: 'DELETE', url: '/items/3', headers: { 'x-request-id': 'from-header' } };
    const req = { raw, id: 'req-1', routeOptions: { url: '/items/:id' } };
    expect(httpRequestInfo(req)).toEqual({ method: 'DELETE', route: 'DELETE /items/:id', requestId: 'from-header', platform: 'fastify' });
  });
});

/** A Node HTTP/1 response on `socket`, without the listeners a real server would add to it. */
function responseOn(socket: Socket): ServerResponse {
  const res = new ServerResponse(new IncomingMessage(socket));
  Object.defineProperty(res, 'socket', { value: socket });
  return res;
}

describe('onClientDisconnect', () => {
  it('fires when the response closes before it finished, and not after removal or a finished response', () => {
    const early = Object.assign(new EventEmitter(), { writableFinished: false, setHeader: () => undefined });
    let calls = 0;
    onClientDisconnect(early, () => calls++);
    early.emit('close');
    expect(calls).toBe(1);

    const finished = Object.assign(new EventEmitter(), { writableFinished: true, setHeader: () => undefined });
    onClientDisconnect({ raw: finished }, () => calls++);
    finished.emit('close');
    expect(calls).toBe(1);

    const removed = Object.assign(new EventEmitter(), { writableFinished: false, setHeader: () => undefined });
    const stop = onClientDisconnect(removed, () => calls++);
    stop();
    removed.emit('close');
    expect(calls).toBe(1);
    expect(removed.listenerCount('close')).toBe(0);
    expect(rawResponseOf({ raw: finished })).toBe(finished);
  });

  it('on HTTP/1 shares one socket listener across the requests a keep-alive connection carries', () => {
    const socket = new Socket();
    const response = () => responseOn(socket);
    const closed: string[] = [];
    for (let i = 0; i < 1000; i++) onClientDisconnect(response(), () => closed.push(`old ${i}`))();
    const first = onClientDisconnect(response(), () => closed.push('first'));
    // pipelined requests on the same connection, one of them done before the client leaves
    onClientDisconnect(response(), () => closed.push('second'));
    onClientDisconnect(response(), () => closed.push('third'))();
    const finished = response();
    Object.defineProperty(finished, 'writableFinished', { value: true });
    onClientDisconnect({ raw: finished }, () => closed.push('finished'));
    expect(socket.listenerCount('close')).toBe(1);

    first();
    socket.emit('close');
    expect(closed).toEqual(['second']);
    socket.destroy();
  });

  it('calls back at once for a socket that is already closed', () => {
    const socket = new Socket();
    socket.destroy();
    let calls = 0;
    onClientDisconnect(responseOn(socket), () => calls++);
    expect(calls).toBe(1);
    expect(socket.listenerCount('close')).toBe(0);
  });
});
