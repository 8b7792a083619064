// Keep-alive HTTP client of the load scenarios (node:http: no connection per request, a bounded
// number of sockets, no keep-alive races of its own).
import { Agent, request } from 'node:http';
import { checkProblem, isRetryAfter } from './problem.js';

/** A plain answer. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
}

/**
 * A keep-alive agent opening at most `maxSockets` connections per server. It uses its sockets in
 * turn and drops one idle for 4 s, so none sits idle until the server's keep-alive timeout (5 s on
 * Express) closes it just as a request goes out on it (an ECONNRESET of the client's own making).
 */
export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, scheduling: 'fifo', timeout: 4_000 });
}

/** `GET url` through `agent`. */
export function get(url: string, agent: Agent): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Classifies an answer that should be `status` problem+json with `Retry-After` (when
 * `retryAfter`) and, when given, one of `codes`: `'expected'`, or a short description of what it
 * was instead (`200`, `500 not problem+json`, …), for counting.
 */
export function classifyProblem(answer: HttpAnswer, status: number, { retryAfter = false, codes }: { retryAfter?: boolean; codes?: readonly string[] } = {}): string {
  const header = (name: string) => {
    const value = answer.headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  const problem = checkProblem(answer.status, header('content-type'), answer.text);
  if (!problem.ok) return `${answer.status} ${problem.reason.slice(0, 60)}`;
  const hasRetryAfter = isRetryAfter(header('retry-after'));
  if (answer.status !== status || (codes && !codes.includes(problem.code)) || (retryAfter && !hasRetryAfter)) {
    return `${answer.status} ${problem.code}${retryAfter && !hasRetryAfter ? ' without Retry-After' : ''}`;
  }
  return 'expected';
}

/** `network error ECONNRESET`. */
export function networkError(error: unknown): string {
  return `network error ${(error as { code?: string }).code ?? (error as Error).message}`;
}
