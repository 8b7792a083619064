// The first hour stays green: scripts/newcomer.mjs packs the library and follows
// docs/getting-started.md literally in a temp folder, with an empty npm cache and the npm registry
// (install, the guide's files, tsc, start, the same POST twice: the second is the replay).
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = resolve(fileURLToPath(import.meta.url), '../../..');

it('a new Nest app made by following the getting-started guide answers a duplicate POST with the replay', async () => {
  const child = spawn(process.execPath, [join(root, 'scripts/newcomer.mjs')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  // the steps and their times, in the test log
  console.log(output.split('\n').filter((line) => line.startsWith('newcomer:')).join('\n'));
  expect(code, output).toBe(0);
  expect(output).toContain('newcomer: PASS');
}, 600_000);
