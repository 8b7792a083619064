// A TCP relay that adds latency, run as its own process by the partition driver (compiled to
// build/chaos/partition/relay.js). This machine's kernel has no netem qdisc, so the partition's
// added latency is made here: every chunk, in both directions, is forwarded `delay` ms after it
// arrived, in order. Packet loss and the black hole are made by nftables on the veth behind it.
//
// Environment: ROUTES, a JSON array of { "listen": <port on 127.0.0.1>, "host": <target>, "port": <target port> }.
// Stdin lines: `delay <ms>` (one-way, so a round trip gains twice that). Stdout: `READY` once listening.
import { createServer, connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

interface Route {
  readonly listen: number;
  readonly host: string;
  readonly port: number;
}

let delayMs = 0;

/** Forwards `from` to `to`, each chunk `delayMs` after it arrived and never before the one ahead of it. */
function pipeDelayed(from: Socket, to: Socket): void {
  let lastDue = 0;
  from.on('data', (chunk: Buffer) => {
    if (delayMs === 0 && lastDue <= performance.now()) {
      to.write(chunk);
      return;
    }
    const due = Math.max(performance.now() + delayMs, lastDue);
    lastDue = due;
    setTimeout(() => to.writable && to.write(chunk), due - performance.now());
  });
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, lastDue - performance.now())));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), Math.max(0, lastDue - performance.now())));
}

async function main(): Promise<void> {
  const routes = JSON.parse(process.env.ROUTES ?? '[]') as Route[];
  await Promise.all(
    routes.map(
      (route) =>
        new Promise<void>((resolve, reject) => {
          const server = createServer((client) => {
            const upstream = connect({ host: route.host, port: route.port });
            client.setNoDelay(true);
            upstream.setNoDelay(true);
            pipeDelayed(client, upstream);
            pipeDelayed(upstream, client);
          });
          server.once('error', reject);
          server.listen(route.listen, '127.0.0.1', () => resolve());
        }),
    ),
  );
  createInterface({ input: process.stdin }).on('line', (line) => {
    const match = /^delay (\d+)$/.exec(line.trim());
    if (match) delayMs = Number(match[1]);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdout.write('READY\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`relay failed: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
