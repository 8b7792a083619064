import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const OPTIONAL_PEERS = ['typeorm', '@nestjs/typeorm', '@nestjs/terminus', '@opentelemetry/api'];

/** Every module specifier a built file imports statically (`import … from`, `export … from`). */
function staticImportsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  return [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)';/gms)].map((match) => match[1]!);
}

/** The static import graph of the built root entry point: files reached and bare packages imported. */
function rootGraph(): { files: Set<string>; packages: Set<string> } {
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
  visit(join(root, 'dist/index.js'));
  return { files, packages };
}

// `npm test` builds dist/ first; these check what users install, not the sources.
describe.skipIf(!existsSync(join(root, 'dist/index.js')))('published entry points', () => {
  it('the root entry point never imports an optional peer (typeorm, terminus, OpenTelemetry) statically', () => {
    const { files, packages } = rootGraph();
    expect(files.size).toBeGreaterThan(20);
    const peers = [...packages].filter((name) => OPTIONAL_PEERS.some((peer) => name === peer || name.startsWith(`${peer}/`)));
    expect(peers).toEqual([]);
    expect([...files].filter((file) => file.includes('/dist/typeorm/') || file.includes('/dist/health/'))).toEqual([]);
  });

  it('each subpath of the exports map loads in plain Node and exposes its main API', () => {
    const script = `
      const root = await import('nest-resilience');
      const typeorm = await import('nest-resilience/typeorm');
      const health = await import('nest-resilience/health');
      const testing = await import('nest-resilience/testing');
      console.log(JSON.stringify({
        root: ['ResilienceModule', 'Retryable', 'Timeout', 'Idempotent', 'CircuitBreaker', 'Bulkhead', 'Fallback'].filter((n) => typeof root[n] === 'function'),
        typeorm: ['TypeOrmIdempotencyStore', 'IdempotencyRecord'].filter((n) => typeof typeorm[n] === 'function'),
        health: ['ResilienceHealthModule', 'IdempotencyStoreHealthIndicator'].filter((n) => typeof health[n] === 'function'),
        testing: ['FakeClock', 'seededRandom', 'EventRecorder', 'observe'].filter((n) => typeof testing[n] === 'function'),
      }));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', `import 'reflect-metadata';${script}`], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual({
      root: ['ResilienceModule', 'Retryable', 'Timeout', 'Idempotent', 'CircuitBreaker', 'Bulkhead', 'Fallback'],
      typeorm: ['TypeOrmIdempotencyStore', 'IdempotencyRecord'],
      health: ['ResilienceHealthModule', 'IdempotencyStoreHealthIndicator'],
      testing: ['FakeClock', 'seededRandom', 'EventRecorder', 'observe'],
    });
  });
});
