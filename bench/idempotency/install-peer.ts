// Installs the peer the idempotency benchmarks compare against (@node-idempotency/nestjs) in its
// own folder, bench/idempotency/peer, the first time a run needs it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../shared/report.js';

/** Installs @node-idempotency/nestjs in bench/idempotency/peer from its lock file, once. */
export function installPeer(log: (line: string) => void): void {
  const dir = join(packageRoot(), 'bench', 'idempotency', 'peer');
  if (existsSync(join(dir, 'node_modules', '@node-idempotency', 'nestjs'))) return;
  log('Installing @node-idempotency/nestjs in bench/idempotency/peer (npm ci --legacy-peer-deps: it declares Nest 9/10)…');
  const install = spawnSync('npm', ['ci', '--legacy-peer-deps', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
  if (install.status !== 0) throw new Error(`npm ci in ${dir} failed (exit ${install.status}); install the peer there by hand or leave the peer's servers out of the run.`);
}
