// A Redis server for the benchmark: REDIS_URL's, or a throwaway redis-server of our own
// (scripts/redis.mjs), or a reason why there is none.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { packageRoot } from './report.js';

/** A Redis server for this run; `close()` stops a throwaway one. */
export interface BenchRedis {
  readonly url: string;
  /** Where it came from, for the report. */
  readonly source: string;
  close(): Promise<void>;
}

/** Provides a server, or returns the reason Redis cannot be used here. */
export async function obtainRedis(env: NodeJS.ProcessEnv = process.env): Promise<BenchRedis | { skipped: string }> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, source: 'REDIS_URL', close: async () => undefined };
  try {
    const script = (await import(pathToFileURL(join(packageRoot(), 'scripts', 'redis.mjs')).href)) as typeof import('../../scripts/redis.mjs');
    const server = await script.startRedis();
    return { url: server.url, source: 'throwaway redis-server (scripts/redis.mjs, no persistence)', close: () => server.stop() };
  } catch (error) {
    return { skipped: `no REDIS_URL and no throwaway redis-server could be started: ${(error as Error).message.split('\n')[0]}` };
  }
}

/**
 * Counts the commands clients send to the server (MONITOR; the commands a script runs inside the
 * server are not round trips and are left out, and so are this counter's own). The difference
 * across one request is that request's round trips, whoever sent them.
 */
export class RedisCommandCounter {
  private sent = 0;

  private constructor(
    private readonly client: Redis,
    private readonly monitor: Redis,
  ) {}

  static async start(url: string): Promise<RedisCommandCounter> {
    const client = new Redis(url);
    // monitor() opens a connection of its own: both are closed by close()
    const monitor = await client.monitor();
    const counter = new RedisCommandCounter(client, monitor);
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args[0]?.toLowerCase() !== 'monitor') counter.sent++;
    });
    return counter;
  }

  /** Commands sent so far; wait a moment after the request so MONITOR's lines have arrived. */
  get commands(): number {
    return this.sent;
  }

  close(): void {
    this.monitor.disconnect();
    this.client.disconnect();
  }
}
