// The newcomer test: does docs/getting-started.md work, as written, for someone who has nothing but
// the packed library and the npm registry? In a temp folder, with an empty npm cache, it
//   1. packs this working tree (`npm pack`, the build already in dist/) into nest-resilience/,
//      where the guide's first step would have put the tarball (that step is marked
//      `<!-- newcomer: skip … -->`: it runs in a clone, which this is);
//   2. runs every other `sh` block of the guide, in order, in the folder its `cd`s lead to, and
//      writes every file the guide shows (snippet markers `app/<path>`) at `<path>`;
//   3. starts the app where the guide says `npm start`, and sends the guide's `curl` twice: the
//      second answer must be the replay (`Idempotent-Replayed: true`, the same body).
// Two things are not literal: `npm start` runs in the background on a free port (PORT), and the
// curl's `localhost:3000` is pointed at that port.
//
//   node scripts/newcomer.mjs [--keep]   (npm run test:newcomer)
// NEWCOMER_NPM_CACHE=<dir> reuses an npm cache instead of a new empty one. Prints the time of
// each step; exits non-zero with what went wrong.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './postgres.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const GUIDE = join(ROOT, 'docs/getting-started.md');
const keep = process.argv.includes('--keep');
const started = performance.now();

function step(name, run) {
  const at = performance.now();
  const result = run();
  const record = (value) => {
    console.log(`newcomer: ${name} (${((performance.now() - at) / 1000).toFixed(1)} s)`);
    return value;
  };
  return result instanceof Promise ? result.then(record) : record(result);
}

/** The guide as a list of steps: `sh` blocks (with their skip marker) and shown files. */
function guideSteps() {
  const lines = readFileSync(GUIDE, 'utf8').split('\n');
  const steps = [];
  for (let index = 0; index < lines.length; index++) {
    const fence = /^(`{3,})(\w*)\s*$/.exec(lines[index]);
    if (!fence) continue;
    const close = lines.findIndex((line, at) => at > index && line.trim() === fence[1]);
    const body = lines.slice(index + 1, close).join('\n');
    const before = lines.slice(0, index).reverse().find((line) => line.trim() !== '') ?? '';
    const snippet = /^<!-- snippet: app\/(\S+) -->$/.exec(before.trim());
    if (fence[2] === 'sh') steps.push({ kind: 'sh', body, skip: /^<!-- newcomer: skip\b/.test(before.trim()) });
    else if (snippet) steps.push({ kind: 'file', path: snippet[1], body });
    index = close;
  }
  return steps;
}

/** Throws unless dist/ exists and is newer than every library source (npm pack ships it as is). */
function requireFreshDist() {
  const newest = (dir) =>
    Math.max(0, ...readdirSync(dir).map((name) => (statSync(join(dir, name)).isDirectory() ? newest(join(dir, name)) : name.endsWith('.spec.ts') ? 0 : statSync(join(dir, name)).mtimeMs)));
  if (!existsSync(join(ROOT, 'dist/index.js')) || statSync(join(ROOT, 'dist/index.js')).mtimeMs < newest(join(ROOT, 'lib'))) {
    throw new Error('dist/ is missing or older than lib/: run `npm run build` first (`npm test` does it).');
  }
}

function fail(message, output = '') {
  throw new Error(`${message}${output ? `\n--- output ---\n${output.slice(-6_000)}` : ''}`);
}

const work = mkdtempSync(join(tmpdir(), 'nest-resilience-newcomer-'));
const env = {
  ...process.env,
  npm_config_cache: process.env.NEWCOMER_NPM_CACHE ?? join(work, 'npm-cache'),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  // the guide's commands, not this repository's, decide what is installed
  npm_config_userconfig: join(work, 'npmrc'),
};
delete env.npm_config_prefix;
writeFileSync(env.npm_config_userconfig, '');
let server;

/** Runs one `sh` block of the guide in `cwd` with bash -e; returns the folder it ends in and its stdout. */
function runShell(body, cwd) {
  const cwdFile = join(work, '.cwd');
  const run = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', `${body}\npwd > '${cwdFile}'`], { cwd, env, encoding: 'utf8' });
  if (run.status !== 0) fail(`the guide's commands failed (exit ${run.status}) in ${cwd}:\n${body}`, `${run.stdout}${run.stderr}`);
  return { cwd: readFileSync(cwdFile, 'utf8').trim(), stdout: run.stdout };
}

/** Parses `curl -i` output into status, headers and body. */
function parseCurl(text) {
  const [head, ...rest] = text.replace(/\r\n/g, '\n').split('\n\n');
  const [statusLine, ...headerLines] = head.split('\n');
  const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\n\n').trim() };
}

async function main() {
  step('dist/ is current', requireFreshDist);
  const steps = guideSteps();
  if (!steps.some((item) => item.kind === 'sh' && item.skip)) fail('docs/getting-started.md has no step marked <!-- newcomer: skip --> (the packing in a clone)');
  step('npm pack (the working tree, into nest-resilience/)', () => {
    mkdirSync(join(work, 'nest-resilience'));
    const run = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', join(work, 'nest-resilience')], { cwd: ROOT, env, encoding: 'utf8' });
    if (run.status !== 0) fail('npm pack failed', `${run.stdout}${run.stderr}`);
  });

  let cwd = work;
  let port;
  let answers = 0;
  for (const item of steps) {
    if (item.kind === 'file') {
      step(`write ${item.path}`, () => {
        mkdirSync(dirname(join(cwd, item.path)), { recursive: true });
        writeFileSync(join(cwd, item.path), `${item.body}\n`);
      });
      continue;
    }
    if (item.skip) continue;
    const lines = item.body.split('\n');
    const startAt = lines.findIndex((line) => line.trim() === 'npm start');
    if (startAt >= 0) {
      const before = lines.slice(0, startAt).join('\n');
      if (before.trim()) cwd = step(before.replace(/\n/g, ' && '), () => runShell(before, cwd)).cwd;
      port = await freePort();
      await step(`npm start (PORT=${port})`, async () => {
        const at = cwd;
        let output = '';
        server = spawn('npm', ['start'], { cwd: at, env: { ...env, PORT: String(port) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
        server.stdout.on('data', (chunk) => (output += chunk));
        server.stderr.on('data', (chunk) => (output += chunk));
        const deadline = Date.now() + 60_000;
        for (;;) {
          if (server.exitCode !== null) fail(`npm start exited with ${server.exitCode}`, output);
          if (Date.now() > deadline) fail('the app did not answer within 60 s', output);
          if (await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)) break;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      });
      continue;
    }
    if (item.body.trimStart().startsWith('curl ')) {
      if (port === undefined) fail('the guide sends a request before it starts the app');
      const body = item.body.replace(/localhost:3000/g, `localhost:${port}`);
      const first = step('curl (the first time)', () => parseCurl(runShell(body, cwd).stdout));
      const second = step('curl (the same request again)', () => parseCurl(runShell(body, cwd).stdout));
      if (first.status !== 201 || first.headers['idempotent-replayed'] !== undefined) fail(`the first request was answered ${first.status}, replayed: ${first.headers['idempotent-replayed']}`, JSON.stringify(first, null, 2));
      if (second.status !== 201 || second.headers['idempotent-replayed'] !== 'true' || second.body !== first.body) {
        fail('the second request was not the replay of the first', JSON.stringify({ first, second }, null, 2));
      }
      answers += 2;
      continue;
    }
    cwd = step(item.body.split('\n').join(' && '), () => runShell(item.body, cwd)).cwd;
  }
  if (answers === 0) fail('the guide sends no curl request: nothing checked the replay');
}

let status = 0;
try {
  await main();
  console.log(`newcomer: PASS, the getting-started guide works as written (${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
} catch (error) {
  status = 1;
  console.error(`newcomer: FAIL: ${error.message}`);
} finally {
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  if (keep) console.log(`newcomer: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
process.exit(status);
