import { Redis, ReplyError } from 'ioredis';
// ioredis does not re-export it; the spec wants the real class (its name is what is matched).
import { MaxRetriesPerRequestError } from 'ioredis/built/errors/index.js';
import { ClientClosedError, ClientOfflineError, ConnectionTimeoutError, createClient, ErrorReply, SocketClosedUnexpectedlyError } from 'redis';
import { describe, expect, it } from 'vitest';
import { ResilienceConfigError } from '../../../lib/core/errors.js';
import { IdempotencyStoreUnavailableError } from '../../../lib/core/idempotency/idempotency-core.errors.js';
import { isStoreUnavailableError, storeFailureOf } from '../../../lib/core/idempotency/store-failure.js';
import { RedisIdempotencyStore } from '../../../lib/redis/redis-idempotency.store.js';
import { RedisStoreTimeoutError, RedisStoreUnavailableError } from '../../../lib/redis/redis-store.errors.js';

describe('RedisIdempotencyStore options', () => {
  it.each([
    ['neither client nor url', {}, /exactly one of `client`.*and `url`.*got neither; pass one of them/],
    ['both client and url', { client: new Redis({ lazyConnect: true }), url: 'redis://127.0.0.1:1' }, /got both; pass one of them/],
    ['a commandTimeoutMs of 0', { url: 'redis://127.0.0.1:1', commandTimeoutMs: 0 }, /commandTimeoutMs must be a positive integer \(got 0\)/],
    ['a client of neither library', { client: { ping: async () => 'PONG' } as never }, /neither an ioredis Redis\/Cluster nor a node-redis client; pass new Redis\(url\)/],
  ])('refuses %s at start-up with a sentence naming the fix', (_name, options, message) => {
    expect(() => new RedisIdempotencyStore(options)).toThrow(ResilienceConfigError);
    expect(() => new RedisIdempotencyStore(options)).toThrow(message);
  });

  it('with a node-redis client that was never connected, waits commandTimeoutMs for it, then fails as unavailable with a message naming client.connect()', async () => {
    const store = new RedisIdempotencyStore({ client: createClient({ url: 'redis://127.0.0.1:1' }), commandTimeoutMs: 30 });
    const failure = await store.claim({ namespace: 'n', scope: '', key: 'k', fingerprint: 'f', method: 'POST', path: '/', leaseMs: 1_000, ttlMs: 60_000 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RedisStoreUnavailableError);
    expect(storeFailureOf(failure)).toBe('unavailable');
    expect((failure as Error).message).toMatch(/did not become ready within 30 ms \(connection status "closed"\).*await client\.connect\(\)/);
  });

  it('opens no connection before the module starts (a store built at import time costs nothing)', () => {
    const store = new RedisIdempotencyStore({ url: 'redis://127.0.0.1:1' });
    expect(store.client.status).toBe('wait');
    expect(store.keyPrefix).toBe('idempotency:');
  });
});

describe('storeFailureOf: Redis, ioredis and node-redis errors', () => {
  it.each([
    ["ioredis' offline queue disabled", new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'unavailable'],
    ['a closed connection', new Error('Connection is closed.'), 'unavailable'],
    ['retries per request used up', new MaxRetriesPerRequestError(0), 'unavailable'],
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }), 'unavailable'],
    ['a cluster without reachable nodes', new Error('None of startup nodes is available'), 'unavailable'],
    ['a server loading its dataset', new ReplyError('LOADING Redis is loading the dataset in memory'), 'unavailable'],
    ['a server busy with a script', new ReplyError('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.'), 'unavailable'],
    ['a replica after a failover', new ReplyError("READONLY You can't write against a read only replica."), 'unavailable'],
    ['a cluster that is down', new ReplyError('CLUSTERDOWN The cluster is down'), 'unavailable'],
    ['a server out of memory', new ReplyError("OOM command not allowed when used memory > 'maxmemory'."), 'unavailable'],
    ['a socket node-redis saw close under a command', new SocketClosedUnexpectedlyError(), 'unavailable'],
    ['node-redis reconnecting without an offline queue', new ClientOfflineError(), 'unavailable'],
    ['a node-redis client closed by its owner', new ClientClosedError(), 'unavailable'],
    ['a node-redis connect timeout', new ConnectionTimeoutError(), 'unavailable'],
    ['a server loading its dataset (node-redis reply)', new ErrorReply('LOADING Redis is loading the dataset in memory'), 'unavailable'],
    ['the store while disconnected', new RedisStoreUnavailableError('reconnecting'), 'unavailable'],
    ["ioredis' commandTimeout", new Error('Command timed out'), 'timeout'],
    ["the store's commandTimeoutMs", new RedisStoreTimeoutError(1_000), 'timeout'],
    ['a slot being migrated', new ReplyError('TRYAGAIN Multiple keys request during rehashing of slot'), 'timeout'],
  ])('classifies %s as %s', (_name, error, failure) => {
    expect(storeFailureOf(error)).toBe(failure);
    expect(isStoreUnavailableError(error)).toBe(true);
    expect(new IdempotencyStoreUnavailableError(1_000, error).code).toBe(`idempotency_store_${failure}`);
  });

  it.each([
    ['a script error', new ReplyError('ERR user_script:1: Script attempted to access nonexistent global variable')],
    ['a wrong type', new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value')],
    ['NOSCRIPT (handled by the store)', new ReplyError('NOSCRIPT No matching script. Please use EVAL.')],
  ])('does not count %s (a bug, not an outage)', (_name, error) => {
    expect(isStoreUnavailableError(error)).toBe(false);
  });
});
