// `npm run test:under-load`: `npm test` (scripts/test.mjs, same arguments) while `stress --cpu N`
// keeps every core busy, N being the machine's cores unless STRESS_CPUS says otherwise. The suite
// must hold on a loaded machine (a shared CI runner, a laptop building something else); this is
// the run that shows it. Prints the load before and after, stops stress (its whole process group)
// and ends, like test.mjs, with its `N passed, N failed` line and exit status.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cpus = Number(process.env.STRESS_CPUS || availableParallelism());
const load = () => loadavg().map((value) => value.toFixed(1)).join(' ');

const found = spawnSync('stress', ['--version'], { stdio: 'ignore' });
if (found.error) {
  console.error('stress was not found: install it from Debian\'s packages (`apt-get install -y stress`); .ci/run does.');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

console.log(`Load average before: ${load()}. Starting stress --cpu ${cpus} for the whole run.`);
// its own process group, so stopping it stops the workers it forked
const stress = spawn('stress', ['--cpu', String(cpus)], { stdio: 'ignore', detached: true });
const stopStress = () => {
  try {
    process.kill(-stress.pid, 'SIGTERM');
  } catch {
    // already gone
  }
};
process.on('exit', stopStress);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

const started = Date.now();
const testScript = join(dirname(fileURLToPath(import.meta.url)), 'test.mjs');
const run = spawn(process.execPath, [testScript, ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let output = '';
run.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  output = (output + chunk).slice(-4096);
});
const status = await new Promise((resolve) => run.on('close', (code) => resolve(code ?? 1)));
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const counts = output.match(/^\d+ passed, \d+ failed.*$/gm)?.pop() ?? '0 passed, 1 failed';
console.log(`Ran under stress --cpu ${cpus} for ${minutes} min; load average at the end: ${load()}.`);
console.log(counts);
process.exit(status);
