// lib/'s import rules, as committed in .dependency-cruiser.cjs (`npm run lint:imports` runs the
// same check): lib/core imports only lib/core and Node built-ins (no Nest, no rxjs, not even a
// type), each folder imports only the folders ARCHITECTURE.md's map puts below it, and no file
// imports itself back through others (type-only imports included).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('lib/ import rules', () => {
  it('hold: core is framework-free, folders import in one direction, no import circle', () => {
    const cli = join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
    const run = spawnSync(process.execPath, [cli, 'lib', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: root, encoding: 'utf8' });
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/error|warn/i);
    expect(run.status).toBe(0);
  }, 60_000);
});
