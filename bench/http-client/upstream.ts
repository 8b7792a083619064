// The upstream every client of the HTTP-client benchmark calls: a plain node:http server on
// 127.0.0.1 answering a small JSON body, in its own process (pinned away from the callers).
// Started by run.ts through the shared child harness protocol; not meant to be run by hand.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChildMessage, ParentMessage } from '../shared/server-harness.js';

const BODY = JSON.stringify({ hello: 'world', items: [1, 2, 3] });

if (!process.send) throw new Error('This file is a benchmark upstream: start it through bench/http-client/run.js (it needs an IPC channel).');
const send = (message: ChildMessage) => process.send!(message);
process.on('disconnect', () => process.exit(0));

let requests = 0;
const server = createServer((req, res) => {
  requests++;
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
  res.end(BODY);
});
server.keepAliveTimeout = 60_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') {
      server.closeAllConnections();
      server.close(() => process.exit(0));
      return;
    }
    const handlers: Record<string, () => unknown> = {
      cpu: () => {
        const { user, system } = process.cpuUsage();
        return user + system;
      },
      requests: () => requests,
    };
    const handler = handlers[message.name];
    if (handler) send({ type: 'reply', id: message.id, result: handler() });
    else send({ type: 'reply', id: message.id, error: `No IPC handler "${message.name}" in the upstream.` });
  });
  send({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
