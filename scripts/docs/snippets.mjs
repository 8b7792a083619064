// Code in the docs is included from files under docs/snippets/, which `npm test` compiles against
// the built package and runs. A Markdown file shows a snippet file with a marker line right before
// a fenced block:
//
//   <!-- snippet: getting-started/src/main.ts -->
//   ```ts
//   …the file, verbatim…
//   ```
//
// `path#name` shows only the lines between `// #region name` and `// #endregion name` (dedented);
// a whole file is shown without its region marker lines. Rules the check enforces:
// - every marked block equals its file (or region), byte for byte;
// - every ```ts block in README.md and docs/ is a marked one (code that is not compiled is not shown);
// - every file under docs/snippets/ (but tsconfig.json) is shown somewhere, so none rots unseen.
//
//   node scripts/docs/snippets.mjs          checks, exit 1 with the list of differences
//   node scripts/docs/snippets.mjs --write  rewrites the blocks from the files (npm run docs:snippets)
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SNIPPETS_DIR = join(ROOT, 'docs/snippets');
const MARKER = /^<!-- snippet: ([^ #]+)(?:#([\w-]+))? -->$/;
const FENCE = /^(`{3,})([\w-]*)\s*$/;
const LANGUAGE = { '.ts': 'ts', '.mts': 'ts', '.js': 'js', '.mjs': 'js', '.json': 'json', '.sh': 'sh', '.yaml': 'yaml', '.yml': 'yaml' };
/** Files under docs/snippets/ that are configuration of the snippets, not snippets. */
const NOT_SHOWN = new Set(['tsconfig.json']);

/** Every file below `dir` (recursively), as absolute paths. */
export function filesUnder(dir, keep = () => true) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, keep));
    else if (keep(path)) out.push(path);
  }
  return out;
}

/** The Markdown files whose code blocks are snippets: README.md and docs/ (the generated reference aside). */
export function documentationFiles() {
  return [join(ROOT, 'README.md'), ...filesUnder(join(ROOT, 'docs'), (path) => path.endsWith('.md') && !path.startsWith(join(ROOT, 'docs/api/')))];
}

function dedent(lines) {
  const indents = lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)[0].length);
  const cut = indents.length ? Math.min(...indents) : 0;
  return lines.map((line) => line.slice(cut));
}

const REGION_LINE = /^\s*\/\/ #(?:region|endregion)\b.*$/;

/** What a marker shows: the whole file without region markers, or one region, dedented. */
export function snippetText(path, region) {
  const text = readFileSync(join(SNIPPETS_DIR, path), 'utf8').replace(/\n$/, '');
  const lines = text.split('\n');
  if (!region) return lines.filter((line) => !REGION_LINE.test(line)).join('\n');
  const start = lines.findIndex((line) => line.trim() === `// #region ${region}`);
  const end = lines.findIndex((line, index) => index > start && line.trim() === `// #endregion ${region}`);
  if (start < 0 || end < 0) throw new Error(`docs/snippets/${path} has no "// #region ${region}" … "// #endregion ${region}"`);
  return dedent(lines.slice(start + 1, end).filter((line) => !REGION_LINE.test(line))).join('\n');
}

/**
 * Reads every documentation file and compares (or rewrites) its snippet blocks.
 * Returns { problems: string[], shown: Set<string> (snippet paths shown), blocks: number, written: string[] }.
 */
export function syncSnippets({ write = false } = {}) {
  const problems = [];
  const shown = new Set();
  const written = [];
  let blocks = 0;
  for (const file of documentationFiles()) {
    const name = relative(ROOT, file);
    const lines = readFileSync(file, 'utf8').split('\n');
    const out = [];
    let changed = false;
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index];
      const marker = MARKER.exec(line.trim());
      const fence = FENCE.exec(line);
      if (fence && !marker) {
        // a fenced block without a marker: copy it through (and refuse TypeScript ones)
        const close = lines.findIndex((other, at) => at > index && other.startsWith(fence[1]) && other.trim() === fence[1]);
        if (close < 0) {
          problems.push(`${name}:${index + 1}: a code block that never closes`);
          out.push(...lines.slice(index));
          break;
        }
        if (['ts', 'typescript', 'tsx'].includes(fence[2])) {
          problems.push(`${name}:${index + 1}: a TypeScript block without a "<!-- snippet: … -->" marker; put the code in docs/snippets/ and include it, so it is compiled`);
        }
        out.push(...lines.slice(index, close + 1));
        index = close;
        continue;
      }
      out.push(line);
      if (!marker) continue;
      blocks++;
      const [, path, region] = marker;
      const at = `${name}:${index + 1}`;
      let expected;
      try {
        expected = snippetText(path, region);
        shown.add(path);
      } catch (error) {
        problems.push(`${at}: ${error.code === 'ENOENT' ? `docs/snippets/${path} does not exist` : error.message}`);
        continue;
      }
      const language = LANGUAGE[extname(path)] ?? '';
      let ticks = '```';
      while (expected.includes(ticks)) ticks += '`';
      const open = FENCE.exec(lines[index + 1] ?? '');
      const close = open ? lines.findIndex((other, after) => after > index + 1 && other.trim() === open[1]) : -1;
      const current = open && close > 0 ? lines.slice(index + 2, close).join('\n') : undefined;
      if (current === expected && open[2] === language) {
        out.push(...lines.slice(index + 1, close + 1));
        index = close;
        continue;
      }
      if (!write) {
        problems.push(current === undefined ? `${at}: the marker of docs/snippets/${path} is not followed by a code block` : `${at}: the block differs from docs/snippets/${path}${region ? `#${region}` : ''}`);
        if (open && close > 0) {
          out.push(...lines.slice(index + 1, close + 1));
          index = close;
        }
        continue;
      }
      out.push(`${ticks}${language}`, ...expected.split('\n'), ticks);
      if (open && close > 0) index = close;
      changed = true;
    }
    if (write && changed) {
      writeFileSync(file, out.join('\n'));
      written.push(name);
    }
  }
  for (const file of filesUnder(SNIPPETS_DIR)) {
    const path = relative(SNIPPETS_DIR, file);
    if (!NOT_SHOWN.has(path.split('/').pop()) && !shown.has(path)) problems.push(`docs/snippets/${path} is shown in no document: include it or delete it`);
  }
  return { problems, shown, blocks, written };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const write = process.argv.includes('--write');
  const { problems, blocks, written } = syncSnippets({ write });
  for (const file of written) console.log(`updated ${file}`);
  if (problems.length) {
    console.error(problems.join('\n'));
    if (!write) console.error('\nRun `npm run docs:snippets` to copy the snippet files into the Markdown.');
    process.exit(1);
  }
  console.log(`${blocks} snippet blocks ${write ? 'written' : 'match their files'}.`);
}
