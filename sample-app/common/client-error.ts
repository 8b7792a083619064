import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { PROBLEM_JSON_CONTENT_TYPE } from 'nest-resilience';
import { malformedRequestProblem } from './problems.js';

/**
 * Answers a request that Node's HTTP parser refused (a `Content-Length` that is not a number or
 * is sent twice, a body shorter than declared, a control character in a header, oversized headers)
 * with problem+json, written straight to the socket: no app code runs for such a request, so
 * Nest's filters never see it. Node's own answer is a bare `400 Bad Request`.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // nothing to answer on a connection the client already dropped
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const problem = malformedRequestProblem(error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400);
  const body = JSON.stringify(problem.problem);
  const status = problem.getStatus();
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_JSON_CONTENT_TYPE}; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nDate: ${new Date().toUTCString()}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Lets requests without a `Host` header reach the app, which answers them 400 problem+json
 * (`HostHeaderMiddleware`) instead of Node's bare 400.
 */
export function leaveHostCheckToTheApp(server: Server): void {
  (server as Server & { requireHostHeader: boolean }).requireHostHeader = false;
}
