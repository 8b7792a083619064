import { Logger } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import { ResilienceConfigError } from '../core/errors.js';

/**
 * What `RedisIdempotencyStore` and `RedisPolicyState` use of a node-redis client (`createClient()`
 * of the `redis` package, 5.x), written out so that neither client package is needed to compile
 * against this one.
 * @publicApi
 */
export interface NodeRedisClient {
  /** Connected and able to take a command now. */
  readonly isReady: boolean;
  /** Connected, connecting or reconnecting (not closed). */
  readonly isOpen: boolean;
  /** Sends one raw command (the store's scripts: EVALSHA, EVAL, TIME…). */
  sendCommand(args: string[]): Promise<unknown>;
  /** One PING round trip. */
  ping(): Promise<unknown>;
  /** Waits for the next `ready`. */
  once(event: 'ready', listener: () => void): unknown;
  /** Stops waiting for `ready`. */
  off(event: 'ready', listener: () => void): unknown;
  /** Observes connection errors (node-redis throws an `error` event that has no listener). */
  on(event: 'error', listener: (error: Error) => void): unknown;
  /** Removes an `error` listener (the store and the shared state add one of their own to every client they are given). */
  off(event: 'error', listener: (error: Error) => void): unknown;
  /** A new client with the same options (pub/sub needs a connection of its own). */
  duplicate(): NodeRedisClient;
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** Subscribes to a pub/sub channel (on a connection of its own). */
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  /** Ends a subscription. */
  unsubscribe(channel: string): Promise<unknown>;
  /** Closes the connection at once. */
  destroy(): void;
}

/**
 * A client the Redis store can use: an ioredis 5 `Redis` or `Cluster`, or a node-redis 5 client.
 * @publicApi
 */
export type RedisStoreClient = Redis | Cluster | NodeRedisClient;

/**
 * The Redis store's and the shared policy state's view of a connection, the same whichever client
 * is behind it.
 * @internal
 */
export interface ScriptConnection {
  /** `ready` when a command can be sent now; otherwise the client's own word for its state. */
  readonly status: string;
  /** Closed, and not coming back by itself. */
  readonly ended: boolean;
  /** The newest connection error the client reported (`Name: message`), if any since it was wrapped. */
  readonly lastError: string | undefined;
  /** Runs a script known by its sha1 (`EVALSHA`) on `keys`. */
  evalsha(sha: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
  /** Runs a script by its source (`EVAL`), which also loads it into the server's script cache. */
  eval(lua: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
  /** Loads a script into the server's script cache (`SCRIPT LOAD`); resolves to its sha1. */
  scriptLoad(lua: string): Promise<string>;
  ping(): Promise<unknown>;
  /** Sends any command as words (`['CONFIG', 'GET', 'maxmemory-policy']`); for start-up checks, not the request path. */
  command(words: readonly string[]): Promise<unknown>;
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
  if (typeof (client as Redis).status === 'string' && typeof (client as Redis).evalsha === 'function') {
    return new IoredisConnection(client as Redis | Cluster, observeErrors(client, owner));
  }
  if (typeof (client as NodeRedisClient).sendCommand === 'function' && typeof (client as NodeRedisClient).isReady === 'boolean') {
    return new NodeRedisConnection(client as NodeRedisClient, observeErrors(client, owner));
  }
  throw new ResilienceConfigError(
    `${owner} got a client that is neither an ioredis Redis/Cluster nor a node-redis client; pass new Redis(url) from ioredis 5, or createClient({ url }) from redis 5 (connected with await client.connect()).`,
  );
}

/**
 * What the library knows of one client's connection errors. One per client, however many stores
 * and states use it, so a client shared by many never collects listeners.
 */
class ClientErrors {
  last: string | undefined;
  /** Set while a warning about the current outage was written; cleared when the client is ready again. */
  private warned = false;

  constructor(
    private readonly client: RedisStoreClient,
    private readonly owner: string,
  ) {}

  readonly onError = (error: Error): void => {
    // node-redis names its errors by class only (SocketClosedUnexpectedlyError has name 'Error')
    const name = error?.constructor?.name && error.constructor.name !== 'Error' ? error.constructor.name : (error?.name ?? 'Error');
    this.last = `${name}: ${error?.message ?? String(error)}`.slice(0, 500);
    if (this.warned) return;
    this.warned = true;
    (this.client as Redis).once('ready', () => (this.warned = false));
    new Logger(this.owner).warn(
      `The Redis client reported a connection error (${this.last}); until it reconnects by itself, idempotent routes on the Redis store answer 503 and shared policies use in-process state. Your own 'error' listeners on the client still run; this warning repeats once per outage.`,
    );
  };
}

const observed = new WeakMap<object, ClientErrors>();

/**
 * Listens to `client`'s 'error' events, once per client. A node-redis client without any 'error'
 * listener throws each connection error as an unhandled 'error' event, which ends the process, and
 * ioredis prints each one: the outage is the store's to report (503s, events, one warning), not a
 * crash. Listeners of the app run as before (an EventEmitter calls every listener).
 */
function observeErrors(client: RedisStoreClient, owner: string): ClientErrors {
  let errors = observed.get(client);
  if (errors === undefined) {
    errors = new ClientErrors(client, owner);
    observed.set(client, errors);
    (client as NodeRedisClient).on('error', errors.onError);
  }
  return errors;
}

class IoredisConnection implements ScriptConnection {
  constructor(
    private readonly client: Redis | Cluster,
    private readonly errors: ClientErrors,
  ) {}

  get lastError(): string | undefined {
    return this.errors.last;
  }

  get status(): string {
    return this.client.status;
  }

  get ended(): boolean {
    return this.client.status === 'end';
  }

  evalsha(sha: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.client.evalsha(sha, keys.length, ...keys, ...args);
  }

  eval(lua: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.client.eval(lua, keys.length, ...keys, ...args);
  }

  async scriptLoad(lua: string): Promise<string> {
    return String(await this.client.script('LOAD', lua));
  }

  ping(): Promise<unknown> {
    return this.client.ping();
  }

  command(words: readonly string[]): Promise<unknown> {
    return this.client.call(words[0]!, ...words.slice(1));
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
  constructor(
    private readonly client: NodeRedisClient,
    private readonly errors: ClientErrors,
  ) {}

  get lastError(): string | undefined {
    return this.errors.last;
  }

  get status(): string {
    return this.client.isReady ? 'ready' : this.client.isOpen ? 'reconnecting' : 'closed';
  }

  get ended(): boolean {
    return false;
  }

  evalsha(sha: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.client.sendCommand(scriptCommand('EVALSHA', sha, keys, args));
  }

  eval(lua: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.client.sendCommand(scriptCommand('EVAL', lua, keys, args));
  }

  async scriptLoad(lua: string): Promise<string> {
    return String(await this.client.sendCommand(['SCRIPT', 'LOAD', lua]));
  }

  ping(): Promise<unknown> {
    return this.client.ping();
  }

  command(words: readonly string[]): Promise<unknown> {
    return this.client.sendCommand([...words]);
  }

  connectIfIdle(): void {}

  onceReady(listener: () => void): void {
    this.client.once('ready', listener);
  }

  offReady(listener: () => void): void {
    this.client.off('ready', listener);
  }
}

/** Whether the server answered that it does not know the script (send it with `EVAL` / `SCRIPT LOAD`). @internal */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function scriptCommand(command: string, script: string, keys: readonly string[], args: readonly (string | number)[]): string[] {
  const words = new Array<string>(3 + keys.length + args.length);
  words[0] = command;
  words[1] = script;
  words[2] = String(keys.length);
  let at = 3;
  for (const key of keys) words[at++] = key;
  for (const arg of args) words[at++] = String(arg);
  return words;
}

/**
 * A connection of its own for one pub/sub channel: the subscriber the app gave, or a duplicate of
 * its client opened on first use (and closed by {@link ChannelSubscription.close}).
 * @internal
 */
export interface ChannelSubscription {
  /** Subscribes to `channel`; resolves once the server confirmed, rejects if it could not. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<void>;
  /** Closes a connection it opened, or unsubscribes the one it was given from `channel`. */
  close(channel: string): Promise<void>;
}

/**
 * The subscription side of `client` (ioredis or node-redis), on `subscriber` when given.
 * @internal
 */
export function channelSubscriptionOf(client: RedisStoreClient, subscriber: RedisStoreClient | undefined, owner: string): ChannelSubscription {
  if (subscriber !== undefined) {
    scriptConnectionOf(subscriber, owner);
    if (isIoredis(subscriber) !== isIoredis(client)) {
      throw new ResilienceConfigError(
        `${owner} got a \`client\` and a \`subscriber\` of different libraries (one ioredis, one node-redis); pass a subscriber of the client's library, or none (it then duplicates the client).`,
      );
    }
  }
  return isIoredis(client) ? new IoredisSubscription(client as Redis, subscriber as Redis | undefined) : new NodeRedisSubscription(client as NodeRedisClient, subscriber as NodeRedisClient | undefined);
}

function isIoredis(client: RedisStoreClient): boolean {
  return typeof (client as Redis).status === 'string';
}

class IoredisSubscription implements ChannelSubscription {
  private connection: Redis | undefined;
  private onMessage: ((from: string, message: string) => void) | undefined;

  constructor(
    private readonly client: Redis,
    private readonly given: Redis | undefined,
  ) {}

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<void> {
    // the offline queue lets SUBSCRIBE wait for the connection (a client made with
    // enableOfflineQueue: false would refuse it while connecting); ioredis resubscribes after reconnects
    const connection = (this.connection ??= this.given ?? this.ownDuplicate());
    this.onMessage = (from: string, message: string) => {
      if (from === channel) onMessage(message);
    };
    connection.on('message', this.onMessage);
    await connection.subscribe(channel);
  }

  private ownDuplicate(): Redis {
    const connection = this.client.duplicate({ enableOfflineQueue: true });
    // reconnect failures show in the policies (fallback events); without a listener ioredis writes
    // each one to stderr as an unhandled 'error' event
    connection.on('error', () => undefined);
    return connection;
  }

  async close(channel: string): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (connection === undefined) return;
    // a subscriber of the app's outlives this subscription: a later one must not find this listener
    if (this.onMessage !== undefined) connection.off('message', this.onMessage);
    this.onMessage = undefined;
    if (this.given === undefined) connection.disconnect();
    else await connection.unsubscribe(channel).catch(() => undefined);
  }
}

/** node-redis wants a connected client before SUBSCRIBE; it resubscribes after reconnects itself. */
class NodeRedisSubscription implements ChannelSubscription {
  private connection: NodeRedisClient | undefined;

  constructor(
    private readonly client: NodeRedisClient,
    private readonly given: NodeRedisClient | undefined,
  ) {}

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<void> {
    let connection = this.given;
    if (connection === undefined) {
      connection = this.client.duplicate();
      // reconnect failures show in the policies (fallback events), not as unhandled 'error' events
      connection.on('error', () => undefined);
      this.connection = connection;
      await connection.connect();
    } else {
      this.connection = connection;
    }
    await connection.subscribe(channel, onMessage);
  }

  async close(channel: string): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (connection === undefined) return;
    if (this.given === undefined) connection.destroy();
    else await connection.unsubscribe(channel).catch(() => undefined);
  }
}
