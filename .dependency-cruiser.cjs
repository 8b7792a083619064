// The import rules of lib/, checked by `npm run lint:imports` (the first step of `npm test`).
// ARCHITECTURE.md's map says the same in prose: each folder may import itself, the folders listed
// for it below, Node built-ins and packages; nothing else. Listing what is allowed (not what is
// forbidden) keeps the folders in one direction, so no two folders can import each other, and a
// new folder must be given its place here before anything imports it.
// Type-only imports count: a circle of `import type` still ties the files together for a reader,
// and a type that core borrows from a Nest folder is a layer leak.

/** Folders (under lib/) each folder may import besides itself. */
const MAY_IMPORT = {
  core: [],
  testing: ['core'],
  context: ['core'],
  fetch: ['core', 'context'],
  'engine/binding': [],
  observability: ['core', 'context', 'constants'],
  http: ['core', 'context', 'constants'],
  interfaces: ['core', 'http', 'observability'],
  decorators: ['core', 'context', 'engine/binding', 'interfaces', 'constants'],
  idempotency: ['core', 'context', 'engine/binding', 'http', 'interfaces', 'observability', 'constants'],
  // one adapter per Nest context (HTTP, RPC, …) and the exception filter that renders through them
  contexts: ['core', 'context', 'fetch', 'engine/binding', 'http', 'idempotency', 'interfaces', 'observability', 'constants'],
  engine: ['core', 'context', 'engine/binding', 'contexts', 'http', 'idempotency', 'interfaces', 'observability', 'constants'],
  'http-client': ['core', 'context', 'fetch', 'interfaces', 'observability', 'constants'],
  redis: ['core'],
  typeorm: ['core', 'idempotency'],
  health: ['core', 'engine', 'http-client'],
  swagger: ['core', 'engine', 'engine/binding', 'http', 'idempotency', 'interfaces', 'constants'],
  console: ['core', 'http', 'http-client', 'interfaces', 'observability', 'constants'],
};
/** The files at the root of lib/ (the module, its definition, the root entry) wire the root entry's folders. */
const ROOT_MAY_IMPORT = ['core', 'context', 'contexts', 'fetch', 'decorators', 'engine', 'http', 'idempotency', 'interfaces', 'observability', 'constants'];

const pathOf = (folder) => (folder === 'constants' ? '^lib/resilience\\.constants\\.ts$' : `^lib/${folder}/`);
const folderPath = (folder) => (folder === 'engine' ? '^lib/engine/(?!binding/)' : pathOf(folder));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Files under lib/ import each other in one direction only; cut a circle where it belongs (a shared type into the lower file, not an `import type` back up).',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'core-imports-only-core',
      severity: 'error',
      comment: 'lib/core is framework-free (published as nest-resilience/core): it imports only lib/core files and Node built-ins.',
      from: { path: '^lib/core/' },
      to: { pathNot: '^lib/core/', dependencyTypesNot: ['core'] },
    },
  ],
  allowed: [
    { from: { path: '^lib/' }, to: { dependencyTypes: ['core', 'npm', 'npm-dev', 'npm-peer', 'npm-optional', 'npm-no-pkg', 'npm-unknown'] } },
    ...Object.entries(MAY_IMPORT).map(([folder, targets]) => ({
      from: { path: folderPath(folder) },
      to: { path: [pathOf(folder), ...targets.map(pathOf)] },
    })),
    { from: { path: '^lib/[^/]+\\.ts$' }, to: { path: ['^lib/[^/]+\\.ts$', ...ROOT_MAY_IMPORT.map(pathOf)] } },
  ],
  allowedSeverity: 'error',
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
