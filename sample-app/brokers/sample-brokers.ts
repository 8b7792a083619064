// The Redis and NATS servers of `npm start`: REDIS_URL's and NATS_URL's, else throwaway ones the
// sample starts itself (scripts/redis.mjs, scripts/nats.mjs: the servers the tests start), else
// none, and the sample runs the in-process path instead. Never throws: a missing or failing
// server is one log line and a fallback.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The servers the sample uses; an unset URL means that part runs in process. */
export interface SampleBrokers {
  /** Redis for the BullMQ report queue; unset: reports are generated in process. */
  readonly queueRedisUrl?: string;
  /** NATS for the "report ready" events; unset: the events are recorded directly. */
  readonly natsUrl?: string;
  /** One phrase per server for the start-up log ("throwaway redis-server on redis://…"). */
  readonly description: string;
  /** Stops the throwaway servers (never those of REDIS_URL / NATS_URL) and deletes their directories. */
  stop(): Promise<void>;
}

interface Throwaway {
  readonly url: string;
  stop(): Promise<void>;
}

/** One kind of server: its URL variable, the binaries that serve it, the script that starts one. */
interface ServerKind {
  readonly urlVar: 'REDIS_URL' | 'NATS_URL';
  readonly binVar: 'REDIS_SERVER' | 'NATS_SERVER';
  readonly names: readonly string[];
  readonly script: 'redis.mjs' | 'nats.mjs';
  readonly start: (module: Record<string, unknown>, bin: string) => Promise<Throwaway>;
}

const REDIS: ServerKind = {
  urlVar: 'REDIS_URL',
  binVar: 'REDIS_SERVER',
  names: ['redis-server', 'valkey-server'],
  script: 'redis.mjs',
  start: (module, bin) => (module as typeof import('../../scripts/redis.mjs')).startRedis({ bin }),
};

const NATS: ServerKind = {
  urlVar: 'NATS_URL',
  binVar: 'NATS_SERVER',
  names: ['nats-server'],
  script: 'nats.mjs',
  start: (module, bin) => (module as typeof import('../../scripts/nats.mjs')).startNats({ bin }),
};

/**
 * Resolves the sample's servers from `env`: a URL variable wins; otherwise a throwaway server is
 * started on a free loopback port when its binary is found (`REDIS_SERVER` / `NATS_SERVER`, else
 * on PATH); otherwise `log` gets one line naming what is missing and what the sample does instead.
 */
export async function startSampleBrokers({ env = process.env, log }: { env?: NodeJS.ProcessEnv; log: (line: string) => void }): Promise<SampleBrokers> {
  const [redis, nats] = await Promise.all([obtain(REDIS, env), obtain(NATS, env)]);
  const missing = [redis, nats].filter((server) => 'missing' in server);
  if (missing.length > 0) {
    const instead = [
      'missing' in redis ? 'reports are generated in process instead of as BullMQ jobs' : undefined,
      'missing' in nats ? '"report ready" events are recorded directly instead of over NATS (still once per event)' : undefined,
    ].filter(Boolean);
    log(
      `${missing.map((server) => server.missing).join('; ')}: ${instead.join(', and ')}. ` +
        `Install ${missing.map((server) => server.kind.names[0]).join(' and ')} or set ${missing.map((server) => server.kind.urlVar).join(' / ')} for the real consumers.`,
    );
  }
  const started = [redis, nats].flatMap((server) => ('throwaway' in server && server.throwaway ? [server.throwaway] : []));
  return {
    ...('url' in redis ? { queueRedisUrl: redis.url } : {}),
    ...('url' in nats ? { natsUrl: nats.url } : {}),
    description: [redis, nats].map((server) => ('url' in server ? server.source : `no ${server.kind.names[0]}`)).join(', '),
    stop: async () => {
      await Promise.allSettled(started.map((server) => server.stop()));
    },
  };
}

/** A server to use (`url`), or why there is none (`missing`: one clause of the fallback line). */
type Obtained =
  | { kind: ServerKind; url: string; source: string; throwaway?: Throwaway }
  | { kind: ServerKind; missing: string };

async function obtain(kind: ServerKind, env: NodeJS.ProcessEnv): Promise<Obtained> {
  const configured = env[kind.urlVar];
  if (configured) return { kind, url: configured, source: `${kind.names[0]} of ${kind.urlVar}` };
  const bin = findServerBinary(kind, env);
  if (!bin) return { kind, missing: `${kind.names[0]} not found (no ${kind.urlVar}, nothing on PATH or in ${kind.binVar})` };
  try {
    const module = (await import(pathToFileURL(join(packageRoot(), 'scripts', kind.script)).href)) as Record<string, unknown>;
    const throwaway = await kind.start(module, bin);
    return { kind, url: throwaway.url, source: `throwaway ${kind.names[0]} on ${throwaway.url}`, throwaway };
  } catch (error) {
    return { kind, missing: `${bin} did not start (${(error as Error).message.split('\n')[0]})` };
  }
}

/**
 * `$REDIS_SERVER` / `$NATS_SERVER` when it names an existing file, else the first binary found on
 * `env.PATH` or in the `sbin` directory beside one of its `bin` directories (Debian installs
 * nats-server in /usr/sbin, which a normal user's PATH leaves out). Only `env` is read, so a PATH
 * without the binaries hides them.
 */
export function findServerBinary(kind: Pick<ServerKind, 'binVar' | 'names'>, env: NodeJS.ProcessEnv): string | undefined {
  const configured = env[kind.binVar];
  if (configured && existsSync(configured)) return configured;
  const onPath = (env.PATH ?? '').split(':').filter(Boolean);
  const dirs = onPath.flatMap((dir) => (dir.endsWith('/bin') ? [dir, `${dir.slice(0, -'bin'.length)}sbin`] : [dir]));
  for (const name of kind.names) {
    for (const dir of dirs) {
      if (existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/** The repository root (where scripts/ is), from sample-app/ in the sources or build/sample-app/ once compiled. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (dir !== dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'nest-resilience') return dir;
    dir = dirname(dir);
  }
  throw new Error('The sample app runs from a checkout of nest-resilience (its scripts/ folder was not found).');
}

/** BullMQ's connection options for a `redis://` URL. */
export function redisConnection(url: string): { host: string; port: number; username?: string; password?: string; db?: number; tls?: object; maxRetriesPerRequest: null } {
  const parsed = new URL(url);
  const db = Number(parsed.pathname.slice(1));
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db > 0 ? { db } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    // a BullMQ worker blocks on its connection: ioredis must not fail its commands after N retries
    maxRetriesPerRequest: null,
  };
}
