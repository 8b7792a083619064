import type { Cluster, Redis } from 'ioredis';
import { ResilienceConfigError } from '../core/errors.js';

/**
 * What {@link RedisIdempotencyStore} uses of a node-redis client (`createClient()` of the `redis`
 * package, 5.x), written out so that neither client package is needed to compile against this one.
 * @publicApi
 */
export interface NodeRedisClient {
  /** Connected and able to take a command now. */
  readonly isReady: boolean;
  /** Connected, connecting or reconnecting (not closed). */
  readonly isOpen: boolean;
  sendCommand(args: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  once(event: 'ready', listener: () => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
}

/**
 * A client the Redis store can use: an ioredis 5 `Redis` or `Cluster`, or a node-redis 5 client.
 * @publicApi
 */
export type RedisStoreClient = Redis | Cluster | NodeRedisClient;

/**
 * The store's view of its connection, the same whichever client is behind it.
 * @internal
 */
export interface ScriptConnection {
  /** `ready` when a command can be sent now; otherwise the client's own word for its state. */
  readonly status: string;
  /** Closed, and not coming back by itself. */
  readonly ended: boolean;
  /** Runs a script known by its sha1 (`EVALSHA`) on one key. */
  evalsha(sha: string, key: string, args: readonly (string | number)[]): Promise<unknown>;
  /** Runs a script by its source (`EVAL`), which also loads it into the server's script cache. */
  eval(lua: string, key: string, args: readonly (string | number)[]): Promise<unknown>;
  ping(): Promise<unknown>;
  /** Starts a connection that was created lazily and never asked to connect. */
  connectIfIdle(): void;
  onceReady(listener: () => void): void;
  offReady(listener: () => void): void;
}

/**
 * Wraps `client` (ioredis or node-redis), or names the fix when it is neither.
 * @internal
 */
export function scriptConnectionOf(client: RedisStoreClient, owner: string): ScriptConnection {
  if (typeof (client as Redis).status === 'string' && typeof (client as Redis).evalsha === 'function') return new IoredisConnection(client as Redis | Cluster);
  if (typeof (client as NodeRedisClient).sendCommand === 'function' && typeof (client as NodeRedisClient).isReady === 'boolean') {
    return new NodeRedisConnection(client as NodeRedisClient);
  }
  throw new ResilienceConfigError(
    `${owner} got a client that is neither an ioredis Redis/Cluster nor a node-redis client; pass new Redis(url) from ioredis 5, or createClient({ url }) from redis 5 (connected with await client.connect()).`,
  );
}

class IoredisConnection implements ScriptConnection {
  constructor(private readonly client: Redis | Cluster) {}

  get status(): string {
    return this.client.status;
  }

  get ended(): boolean {
    return this.client.status === 'end';
  }

  evalsha(sha: string, key: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.evalsha(sha, 1, key, ...args);
  }

  eval(lua: string, key: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.eval(lua, 1, key, ...args);
  }

  ping(): Promise<unknown> {
    return this.client.ping();
  }

  connectIfIdle(): void {
    if (this.client.status === 'wait') this.client.connect().catch(() => undefined);
  }

  onceReady(listener: () => void): void {
    this.client.once('ready', listener);
  }

  offReady(listener: () => void): void {
    this.client.off('ready', listener);
  }
}

/**
 * node-redis sends commands as argument arrays (`sendCommand`), the leanest path it has: no
 * per-command parsing layer. Its client is connected by its owner (`await client.connect()`).
 */
class NodeRedisConnection implements ScriptConnection {
  constructor(private readonly client: NodeRedisClient) {}

  get status(): string {
    return this.client.isReady ? 'ready' : this.client.isOpen ? 'reconnecting' : 'closed';
  }

  get ended(): boolean {
    return false;
  }

  evalsha(sha: string, key: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.sendCommand(scriptCommand('EVALSHA', sha, key, args));
  }

  eval(lua: string, key: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.sendCommand(scriptCommand('EVAL', lua, key, args));
  }

  ping(): Promise<unknown> {
    return this.client.ping();
  }

  connectIfIdle(): void {}

  onceReady(listener: () => void): void {
    this.client.once('ready', listener);
  }

  offReady(listener: () => void): void {
    this.client.off('ready', listener);
  }
}

function scriptCommand(command: string, script: string, key: string, args: readonly (string | number)[]): string[] {
  const words = new Array<string>(args.length + 4);
  words[0] = command;
  words[1] = script;
  words[2] = '1';
  words[3] = key;
  for (let index = 0; index < args.length; index++) words[index + 4] = String(args[index]);
  return words;
}
