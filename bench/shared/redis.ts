// A Redis server for the benchmark: REDIS_URL's, or a throwaway redis-server of our own
// (scripts/redis.mjs), or a reason why there is none.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { packageRoot } from './report.js';

/** A Redis server for this run; `close()` stops a throwaway one. */
export interface BenchRedis {
  readonly url: string;
  /** Where it came from, for the report. */
  readonly source: string;
  close(): Promise<void>;
}

/**
 * `scripts/redis.mjs`, loaded from the package root: compiled files under build/ cannot reach it
 * by a relative import.
 */
export async function loadRedisScript(): Promise<typeof import('../../scripts/redis.mjs')> {
  return import(pathToFileURL(join(packageRoot(), 'scripts', 'redis.mjs')).href);
}

/** Provides a server, or returns the reason Redis cannot be used here. */
export async function obtainRedis(env: NodeJS.ProcessEnv = process.env): Promise<BenchRedis | { skipped: string }> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, source: 'REDIS_URL', close: async () => undefined };
  try {
    const server = await (await loadRedisScript()).startRedis();
    return { url: server.url, source: 'throwaway redis-server (scripts/redis.mjs, no persistence)', close: () => server.stop() };
  } catch (error) {
    return { skipped: `no REDIS_URL and no throwaway redis-server could be started: ${(error as Error).message.split('\n')[0]}` };
  }
}

/**
 * Counts the commands clients send to the server (MONITOR; the commands a script runs inside the
 * server are not round trips and are left out, and so are ready-check INFOs). The difference across
 * one request is that request's round trips, whoever sent them. A plain socket, not a client: the
 * monitor stream is just lines.
 */
export class RedisCommandCounter {
  private sent = 0;
  private pending = '';
  private monitoring = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const lines = (this.pending + chunk).split('\r\n');
      this.pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '+OK') this.monitoring = true;
        // +1796406371.496571 [0 127.0.0.1:60274] "evalsha" "…"   (scripts' commands: [0 lua])
        const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
        if (match && match[1] !== 'lua' && !/^(monitor|info)$/i.test(match[2])) this.sent++;
      }
    });
  }

  static async start(url: string): Promise<RedisCommandCounter> {
    const { hostname, port } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    await once(socket, 'connect');
    socket.write('MONITOR\r\n');
    const counter = new RedisCommandCounter(socket);
    // MONITOR answers +OK before it streams
    while (!counter.monitoring) await new Promise((resolve) => setTimeout(resolve, 5));
    return counter;
  }

  /** Commands sent so far; wait a moment after the request so MONITOR's lines have arrived. */
  get commands(): number {
    return this.sent;
  }

  close(): void {
    this.socket.destroy();
  }
}
