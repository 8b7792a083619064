import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const OPTIONAL_PEERS = ['typeorm', '@nestjs/typeorm', '@nestjs/terminus', '@opentelemetry/api', '@nestjs/swagger', 'ioredis', '@nestjs/microservices', '@nestjs/websockets', 'graphql', 'bullmq'];

/** Every module specifier a built file imports statically (`import … from`, `export … from`). */
function staticImportsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  return [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)';/gms)].map((match) => match[1]!);
}

/** The static import graph of a built entry point: files reached and bare packages imported. */
function graphOf(entry = 'dist/index.js'): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const specifier of staticImportsOf(file)) {
      if (specifier.startsWith('.')) visit(join(dirname(file), specifier));
      else packages.add(specifier);
    }
  };
  visit(join(root, entry));
  return { files, packages };
}

// `npm test` builds dist/ first; these check what users install, not the sources.
describe.skipIf(!existsSync(join(root, 'dist/index.js')))('published entry points', () => {
  it('the root entry point never imports an optional peer (typeorm, terminus, OpenTelemetry, swagger, ioredis, microservices, websockets, graphql, bullmq) statically', () => {
    const { files, packages } = graphOf();
    expect(files.size).toBeGreaterThan(20);
    const peers = [...packages].filter((name) => OPTIONAL_PEERS.some((peer) => name === peer || name.startsWith(`${peer}/`)));
    expect(peers).toEqual([]);
    expect([...files].filter((file) => file.includes('/dist/typeorm/') || file.includes('/dist/health/') || file.includes('/dist/swagger/') || file.includes('/dist/http-client/') || file.includes('/dist/redis/'))).toEqual([]);
    expect([...packages].filter((name) => name === 'undici' || name.startsWith('undici/'))).toEqual([]);
  });

  it('nest-resilience/redis and nest-resilience/health import no Redis client (nor any other optional peer) statically', () => {
    const redis = graphOf('dist/redis/index.js').packages;
    expect([...redis].filter((name) => ['redis', ...OPTIONAL_PEERS].some((peer) => name === peer || name.startsWith(`${peer}/`)))).toEqual([]);
    const health = graphOf('dist/health/index.js').packages;
    expect([...health].filter((name) => name === 'ioredis' || name.startsWith('ioredis/'))).toEqual([]);
    // nor do its typings: a consumer of nest-resilience/health without ioredis still compiles
    expect(readFileSync(join(root, 'dist/health/redis.health.d.ts'), 'utf8')).not.toMatch(/from ['"]ioredis/);
  });

  it('the Redis store serves a node-redis client where ioredis cannot be loaded, and then refuses url with a sentence naming the fix', () => {
    // ioredis refused however it is asked for: an ESM import (resolve hook) or a require (resolver patch)
    const hook = `export async function resolve(specifier, context, next) {
      if (specifier === 'ioredis' || specifier.startsWith('ioredis/')) throw new Error('ioredis is not installed here');
      return next(specifier, context);
    }`;
    const script = `
      import 'reflect-metadata';
      import Module, { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const resolveFilename = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'ioredis' || request.startsWith('ioredis/')) throw Object.assign(new Error("Cannot find module 'ioredis'"), { code: 'MODULE_NOT_FOUND' });
        return resolveFilename.call(this, request, ...rest);
      };
      const { RedisIdempotencyStore } = await import('nest-resilience/redis');
      const sent = [];
      // the part of a node-redis client the store uses, answering as Redis would: its eviction
      // policy (read once before the first operation), then a claim of a fresh key; on() is where
      // the store attaches its connection-error listener
      const client = { isReady: true, isOpen: true, on() {}, once() {}, off() {}, ping: async () => 'PONG',
        sendCommand: async (args) => { sent.push(args[0]); return args[0] === 'CONFIG' ? ['maxmemory-policy', 'noeviction'] : ['acquired', 1, 0]; } };
      const store = new RedisIdempotencyStore({ client });
      const claim = await store.claim({ namespace: 'n', scope: '', key: 'k', fingerprint: 'f', method: 'POST', path: '/p', leaseMs: 1000, ttlMs: 60000 });
      let urlError;
      try { new RedisIdempotencyStore({ url: 'redis://127.0.0.1:1' }); } catch (error) { urlError = error.message; }
      console.log(JSON.stringify({ state: claim.state, fence: claim.lease?.fence, sent, urlError }));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    const result = JSON.parse(output.trim().split('\n').pop()!);
    expect(result).toMatchObject({ state: 'acquired', fence: 1, sent: ['CONFIG', 'EVALSHA'] });
    expect(result.urlError).toMatch(/opens its connection with ioredis, which could not be loaded .*; install it \(npm install ioredis\), or pass a client you created/);
  });

  it('nest-resilience/console imports no optional peer and never loads undici (it finds HTTP clients by a marker), and its page ships next to it', () => {
    const { files, packages } = graphOf('dist/console/index.js');
    const peers = [...packages].filter((name) => OPTIONAL_PEERS.some((peer) => name === peer || name.startsWith(`${peer}/`)));
    expect(peers).toEqual([]);
    expect([...packages].filter((name) => name === 'undici' || name.startsWith('undici/'))).toEqual([]);
    expect([...files].filter((file) => file.endsWith('/dist/http-client/http-client.js'))).toEqual([]);
    for (const asset of ['index.html', 'console.css', 'console.js']) {
      expect(readFileSync(join(root, 'dist/console/assets', asset), 'utf8')).toBe(readFileSync(join(root, 'lib/console/assets', asset), 'utf8'));
    }
  });

  it('nest-resilience/core imports no Nest, rxjs or optional peer, statically or when loaded in plain Node', () => {
    const { packages } = graphOf('dist/core/index.js');
    expect([...packages].filter((name) => !name.startsWith('node:'))).toEqual([]);
    // a resolve hook refuses every @nestjs/* and rxjs module the import might load, however it is reached
    const hook = `export async function resolve(specifier, context, next) {
      if (specifier.startsWith('@nestjs/') || specifier === 'rxjs' || specifier.startsWith('rxjs/')) throw new Error('nest-resilience/core loaded ' + specifier);
      return next(specifier, context);
    }`;
    const script = `
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const core = await import('nest-resilience/core');
      console.log(JSON.stringify(['createPipeline', 'RetryPolicy', 'CircuitBreakerPolicy', 'IdempotencyCore', 'InMemoryIdempotencyStore', 'parseIdempotencyKey'].filter((n) => typeof core[n] === 'function')));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual(['createPipeline', 'RetryPolicy', 'CircuitBreakerPolicy', 'IdempotencyCore', 'InMemoryIdempotencyStore', 'parseIdempotencyKey']);
  });

  it('the published typings compile for a TypeScript consumer, every subpath, with skipLibCheck off', () => {
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'test/package/consumer/tsconfig.json')], { cwd: root, encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
    // one tsc over every subpath's typings: 40 s and more on 2 shared cores
  }, 120_000);

  it('each subpath of the exports map loads in plain Node and exposes its main API', () => {
    const script = `
      const root = await import('nest-resilience');
      const typeorm = await import('nest-resilience/typeorm');
      const health = await import('nest-resilience/health');
      const testing = await import('nest-resilience/testing');
      const core = await import('nest-resilience/core');
      const swagger = await import('nest-resilience/swagger');
      const http = await import('nest-resilience/http');
      const redis = await import('nest-resilience/redis');
      const resilienceConsole = await import('nest-resilience/console');
      console.log(JSON.stringify({
        root: ['ResilienceModule', 'Retryable', 'Timeout', 'Idempotent', 'CircuitBreaker', 'Bulkhead', 'Fallback'].filter((n) => typeof root[n] === 'function'),
        typeorm: ['TypeOrmIdempotencyStore', 'IdempotencyRecord'].filter((n) => typeof typeorm[n] === 'function'),
        health: ['ResilienceHealthModule', 'IdempotencyStoreHealthIndicator'].filter((n) => typeof health[n] === 'function'),
        testing: ['FakeClock', 'seededRandom', 'EventRecorder', 'observe'].filter((n) => typeof testing[n] === 'function'),
        core: ['createPipeline', 'TimeoutPolicy'].filter((n) => typeof core[n] === 'function'),
        swagger: ['ResilienceSwagger'].filter((n) => typeof swagger[n] === 'function'),
        http: ['HttpClient', 'ResilientHttpModule', 'InjectHttpClient', 'UpstreamError'].filter((n) => typeof http[n] === 'function'),
        redis: ['RedisIdempotencyStore', 'RedisStoreUnavailableError', 'RedisStoreTimeoutError'].filter((n) => typeof redis[n] === 'function'),
        redisHealth: typeof health.RedisHealthIndicator,
        console: ['ResilienceConsoleModule', 'ResilienceConsole'].filter((n) => typeof resilienceConsole[n] === 'function'),
      }));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', `import 'reflect-metadata';${script}`], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual({
      root: ['ResilienceModule', 'Retryable', 'Timeout', 'Idempotent', 'CircuitBreaker', 'Bulkhead', 'Fallback'],
      typeorm: ['TypeOrmIdempotencyStore', 'IdempotencyRecord'],
      health: ['ResilienceHealthModule', 'IdempotencyStoreHealthIndicator'],
      testing: ['FakeClock', 'seededRandom', 'EventRecorder', 'observe'],
      core: ['createPipeline', 'TimeoutPolicy'],
      swagger: ['ResilienceSwagger'],
      http: ['HttpClient', 'ResilientHttpModule', 'InjectHttpClient', 'UpstreamError'],
      redis: ['RedisIdempotencyStore', 'RedisStoreUnavailableError', 'RedisStoreTimeoutError'],
      redisHealth: 'function',
      console: ['ResilienceConsoleModule', 'ResilienceConsole'],
    });
  });
});
