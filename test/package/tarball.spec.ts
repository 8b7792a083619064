import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);
const tsc = join(root, 'node_modules/typescript/bin/tsc');

interface PackageJson {
  name: string;
  version: string;
  exports: Record<string, string | { types?: string }>;
  typesVersions?: Record<string, Record<string, string[]>>;
}

const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

/** What a fresh clone does not have: installed, built and generated folders. */
const NOT_IN_A_CLONE = new Set(['node_modules', 'dist', 'build', 'coverage', '.git']);

/**
 * A copy of the work tree as a fresh clone has it: the files git tracks or would track (no
 * dist/, no build/), with the project's node_modules linked in for the build's compiler. Outside
 * a git checkout (an unpacked source archive), every file but the generated folders.
 */
function cleanClone(into: string): void {
  let files: string[];
  try {
    files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\0')
      .filter((file) => file !== '' && !NOT_IN_A_CLONE.has(file.split('/')[0]!) && existsSync(join(root, file)));
  } catch {
    files = readdirSync(root).filter((name) => !NOT_IN_A_CLONE.has(name));
  }
  for (const file of files) {
    mkdirSync(dirname(join(into, file)), { recursive: true });
    cpSync(join(root, file), join(into, file), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(into, 'node_modules'), 'dir');
}

/** The folder a package named `name` is installed in, as Node would find it from `from`. */
function installedPackage(name: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} (a dependency the tarball declares) is not installed: run npm ci.`);
  }
}

/**
 * Packs the tarball's dependencies, and theirs, from the versions the project installed (the
 * lockfile's), into `into`: what the registry would serve a user, without asking it. The consumers
 * install them beside the tarball, so npm checks the tarball's declared ranges against them with no
 * network and no registry metadata in its cache (a fresh machine has none).
 */
async function packDependencies(packageDir: string, into: string): Promise<string[]> {
  const folders = new Set<string>();
  const visit = (dir: string) => {
    const { dependencies = {} } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const name of Object.keys(dependencies)) {
      const installed = installedPackage(name, dir === packageDir ? root : dir);
      if (folders.has(installed)) continue;
      folders.add(installed);
      visit(installed);
    }
  };
  visit(packageDir);
  if (folders.size === 0) return [];
  mkdirSync(into, { recursive: true });
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', into, ...folders], { cwd: into });
  return stdout.trim().split('\n').map((file) => join(into, file.trim()));
}

/**
 * Installs the tarball into a scratch consumer (`consumers/<name>` plus `package`) and compiles
 * it with tsc. npm installs the tarball and its dependencies' tarballs (offline, no peers); the peers
 * (Nest, rxjs, typeorm…) come from the project's node_modules, linked in as the consumers' parent
 * folder's node_modules, so the test needs no network and a few seconds.
 */
async function installConsumer(work: string, name: string, tarball: string, dependencies: readonly string[], packageJson: object): Promise<string> {
  const app = join(work, 'consumers', name);
  mkdirSync(app, { recursive: true });
  cpSync(join(root, 'test/package/consumers', name), app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ ...packageJson, private: true, dependencies: { [manifest.name]: `file:${tarball}` } }, null, 2));
  // the dependencies' tarballs are not saved: the consumer's package.json stays what a user's would be
  await run('npm', ['install', '--offline', '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', '--legacy-peer-deps', '--no-package-lock', ...dependencies], { cwd: app });
  const compiled = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app }).catch((error: { stdout: string }) => error);
  expect(compiled.stdout).toBe('');
  return app;
}

/** Runs the compiled consumer, which serves its decorated routes and prints what a client saw. */
async function serve(app: string): Promise<any> {
  // killed after 30 s with stress --cpu 2 on the shared 2-core machine (load average ~30), where the
  // whole CommonJS consumer test (install, tsc, serve) took 203 s
  const { stdout } = await run(process.execPath, [join(app, 'dist/main.js')], { cwd: app, timeout: 180_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('the packed tarball (npm pack from a clean clone)', () => {
  let work: string;
  let tarball: string;
  let dependencies: string[];
  let files: string[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nest-resilience-pack-'));
    const clone = join(work, 'clone');
    cleanClone(clone);
    // `prepack` builds: the clone has no dist/ until npm pack makes one
    const { stdout } = await run('npm', ['pack', '--pack-destination', work], { cwd: clone });
    tarball = join(work, stdout.trim().split('\n').pop()!);
    execFileSync('tar', ['-xzf', tarball, '-C', work]);
    files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((file) => file.replace(/^package\//, ''));
    symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
    dependencies = await packDependencies(join(work, 'package'), join(work, 'dependencies'));
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships the build, README and LICENSE, and no tests', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/typeorm/index.js', 'dist/redis/index.js', 'dist/redis/index.d.ts']));
    // the console's page is served from the package: no CDN, no build step for the user
    expect(files).toEqual(expect.arrayContaining(['dist/console/index.js', 'dist/console/assets/index.html', 'dist/console/assets/console.css', 'dist/console/assets/console.js']));
    expect(files.filter((file) => file.endsWith('.spec.ts') || file.endsWith('.spec.js') || file.startsWith('test/'))).toEqual([]);
  });

  it('every source map points at a source the package ships', () => {
    const maps = files.filter((file) => file.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(50);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(work, 'package', map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        if (!existsSync(join(work, 'package', dirname(map), source))) missing.push(`${map} → ${source}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('typesVersions gives node10 resolution the same typings as every subpath of the exports map', () => {
    const subpaths = Object.entries(manifest.exports).filter(([subpath]) => subpath !== '.' && subpath !== './package.json');
    const mapped = Object.fromEntries(Object.entries(manifest.typesVersions?.['*'] ?? {}).map(([name, [target]]) => [`./${name}`, `./${target}`]));
    expect(mapped).toEqual(Object.fromEntries(subpaths.map(([subpath, target]) => [subpath, (target as { types: string }).types])));
    for (const types of Object.values(mapped)) expect(files).toContain(types.slice(2));
  });

  it('an ESM Nest app installs it, compiles (NodeNext) and serves a decorated request', async () => {
    const app = await installConsumer(work, 'esm', tarball, dependencies, { name: 'esm-consumer', type: 'module' });
    const seen = await serve(app);
    expect(seen.first).toEqual({ status: 201, replayed: null, body: { id: 1, title: 'Q3', signal: true } });
    expect(seen.second).toEqual({ status: 201, replayed: 'true', body: { id: 1, title: 'Q3', signal: true } });
    expect(seen.core).toBe(true);
    expect(seen.keyHeader).toEqual(expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: true }));
  });

  it('a CommonJS TypeScript app (module commonjs, moduleResolution node10) installs it, compiles and serves decorated requests', async () => {
    const app = await installConsumer(work, 'cjs', tarball, dependencies, { name: 'cjs-consumer' });
    expect(readFileSync(join(app, 'dist/main.js'), 'utf8')).toContain('require("nest-resilience/typeorm")');
    const seen = await serve(app);
    expect(seen.ok).toEqual({ status: 200, body: { city: 'lisbon', degraded: false } });
    expect(seen.degraded).toEqual({ status: 200, body: { degraded: true } });
    expect(seen.first).toEqual({ status: 201, replayed: null, body: { subscription: 1 } });
    expect(seen.second).toEqual({ status: 201, replayed: 'true', body: { subscription: 1 } });
    expect(seen.stored).toBe(1);
    expect(seen.exports).toBe(true);
    expect(seen.commonjs).toBe(true);
  });
});
