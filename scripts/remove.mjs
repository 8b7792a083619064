// `node scripts/remove.mjs dist build`: deletes those folders if they exist, like `rm -rf`, in the
// npm scripts that must also run where npm's shell is cmd.exe (Windows), which has no `rm`.
import { rmSync } from 'node:fs';

for (const path of process.argv.slice(2)) rmSync(path, { recursive: true, force: true });
