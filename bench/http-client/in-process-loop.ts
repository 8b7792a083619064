// A quick A/B loop for profiling the HttpClient's own cost: 30,000 loopback GETs (10 in flight) in
// ONE process, client and upstream together, so `node --cpu-prof` sees both. Not a benchmark of
// record (bench:http-client is); it separates the client's call path from its policies.
//   npm run build:sample && node build/bench/http-client/in-process-loop.js undici|undici-signal|undici-dispatch|client|bare
import 'reflect-metadata';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { HttpClient } from 'nest-resilience/http';

const WARM_UP_CALLS = 5_000;
const CALLS = 30_000;
const IN_FLIGHT = 10;

const mode = process.argv[2] ?? 'client';
if (!['undici', 'undici-signal', 'undici-dispatch', 'client', 'bare'].includes(mode)) {
  throw new Error(`Unknown mode "${mode}"; use undici, undici-signal, undici-dispatch, client or bare.`);
}

const server = createServer((_request, response) => {
  response.setHeader('content-type', 'application/json');
  response.end('{"ok":true,"items":[1,2,3]}');
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const agent = new Agent({ connections: IN_FLIGHT });
// `bare`: every policy the client can switch off is off (timeouts stay), and no header propagation.
const client =
  mode === 'bare'
    ? new HttpClient('loop', { baseUrl, connections: IN_FLIGHT, retry: false, circuitBreaker: false, bulkhead: false, rateLimit: false, haltOnRetryAfter: false, propagate: { deadline: false, requestId: false, traceContext: false } })
    : new HttpClient('loop', { baseUrl, connections: IN_FLIGHT });
const callOnce =
  mode === 'undici'
    ? async () => {
        const response = await request(`${baseUrl}/item`, { dispatcher: agent });
        await response.body.json();
      }
    : mode === 'undici-signal'
      ? // what any cancellable client pays undici: an abort signal and an Accept header per request
        async () => {
          const response = await request(`${baseUrl}/item`, { dispatcher: agent, signal: new AbortController().signal, headers: { accept: 'application/json' } });
          await response.body.json();
        }
        : mode === 'undici-dispatch'
        ? // the design that avoids the signal: dispatch() with a handler keeps an abort() per request
          () => dispatchJson(`/item`)
        : async () => {
            await client.get('/item');
          };

/**
 * One GET through `agent.dispatch()` with a handler: cancellable through the controller it hands
 * over (kept, as a client would keep it), with no AbortSignal and no listener per request.
 */
function dispatchJson(path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let abort: ((reason: Error) => void) | undefined;
    agent.dispatch(
      { origin: baseUrl, path, method: 'GET', headers: { accept: 'application/json' } },
      {
        onRequestStart(controller) {
          abort = (reason) => controller.abort(reason);
        },
        onResponseStart() {},
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          abort = undefined;
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        },
        onResponseError(_controller, error) {
          reject(error);
        },
      },
    );
    void abort;
  });
}

async function run(calls: number): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started++ < calls) await callOnce();
    }),
  );
}

await run(WARM_UP_CALLS);
const startedAt = process.hrtime.bigint();
const cpuBefore = process.cpuUsage();
await run(CALLS);
const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
const cpu = process.cpuUsage(cpuBefore);
console.log(`${mode}: ${Math.round((CALLS / elapsedMs) * 1000)} calls/s, ${((cpu.user + cpu.system) / CALLS).toFixed(1)} µs CPU per call (client and upstream)`);
await client.close();
await agent.close();
server.close();
