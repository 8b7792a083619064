import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Tests import the public entry points by name, exactly like users; these aliases point them at the
// sources so no build is needed and only one copy of each class exists in the test process.
const alias = {
  'nest-resilience/typeorm': here('./lib/typeorm/index.ts'),
  'nest-resilience/health': here('./lib/health/index.ts'),
  'nest-resilience/testing': here('./lib/testing/index.ts'),
  'nest-resilience/core': here('./lib/core/index.ts'),
  'nest-resilience/swagger': here('./lib/swagger/index.ts'),
  'nest-resilience/http': here('./lib/http-client/index.ts'),
  'nest-resilience/redis': here('./lib/redis/index.ts'),
  'nest-resilience/console': here('./lib/console/index.ts'),
  'nest-resilience': here('./lib/index.ts'),
};

export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: { alias },
  test: {
    environment: 'node',
    env: { LOG_LEVEL: 'silent' },
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.spec.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.{spec,e2e-spec}.ts'],
          pool: 'forks',
        },
      },
      {
        extends: true,
        test: { name: 'multi-process', include: ['test/multi-process/**/*.spec.ts'], pool: 'forks' },
      },
      {
        extends: true,
        // npm pack (its prepack build), npm install and tsc of whole consumers: CPU-bound work whose
        // time grows with the machine's load. Measured on the shared 2-core machine: tsc of the
        // consumer's typings 178 s with stress --cpu 2 on top (load average ~30; 20 s was too short
        // at 21), the tarball's npm pack of a clean clone and its dependencies past 120 s at 21 and
        // ~205 s at ~30
        test: { name: 'package', include: ['test/package/**/*.spec.ts'], pool: 'forks', testTimeout: 300_000, hookTimeout: 600_000 },
      },
      {
        // the repository's own scripts: the pinned Node (scripts/node-runtime) and npm test's counts
        extends: true,
        test: { name: 'tooling', include: ['test/tooling/**/*.spec.ts'], pool: 'forks' },
      },
      {
        // flood tests: heap after a full GC, so each file runs in a process of its own with gc() exposed
        extends: true,
        test: { name: 'bounds', include: ['test/bounds/**/*.spec.ts'], pool: 'forks', execArgv: ['--expose-gc'] },
      },
      {
        extends: true,
        test: {
          // The docs' checks build and install whole apps (tsc, TypeDoc, npm from the registry):
          // they run once the other projects are done, so their load cannot skew the timing tests.
          name: 'docs',
          include: ['test/docs/**/*.{spec,e2e-spec}.ts'],
          pool: 'forks',
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
