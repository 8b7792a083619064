// Link check of the repository's Markdown (README.md, docs/ with the generated API reference, and
// every other tracked .md file) and of the documentation paths JSDoc comments in lib/ name: every
// relative link must reach a file or folder, and every #anchor a heading (GitHub's slugs) or an
// explicit id of the target. External links (http:, https:, mailto:) are not fetched.
//
//   node scripts/docs/links.mjs   exit 1 with the list of broken links
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, filesUnder } from './snippets.mjs';

const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'build', 'coverage', '.git']);

/** The Markdown files checked: every .md of the repository outside installed and built folders. */
export function markdownFiles() {
  return filesUnder(ROOT, (path) => path.endsWith('.md') && !relative(ROOT, path).split('/').some((part) => SKIPPED_DIRS.has(part)));
}

/** GitHub's heading slug (github-slugger): lower case, punctuation removed, spaces → hyphens. */
export function githubSlug(text) {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Visible text of a heading line: links reduced to their text, images, HTML tags and emphasis marks dropped. */
function headingText(raw) {
  return raw
    .replace(/!\[[^\]]*\]\([^)]*\)/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\\([\\`*_{}[\]()#+\-.!<>|~])/g, '$1')
    .trim();
}

/** Lines of a Markdown file outside fenced code blocks: `raw`, and `line` with inline code spans blanked out. */
function proseLines(text) {
  const out = [];
  let fence;
  for (const [index, line] of text.split('\n').entries()) {
    const open = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (open && line.trim().startsWith(fence) && line.trim().replace(/[`~]/g, '') === '') fence = undefined;
      continue;
    }
    if (open) {
      fence = open[1];
      continue;
    }
    out.push({ number: index + 1, raw: line, line: line.replace(/(`+)(?:(?!\1).)+?\1/g, (span) => ' '.repeat(span.length)) });
  }
  return out;
}

const anchorCache = new Map();

/** Every anchor a Markdown file offers: heading slugs (with GitHub's -1, -2 suffixes) and explicit ids/names. */
export function anchorsOf(file) {
  if (anchorCache.has(file)) return anchorCache.get(file);
  const anchors = new Set();
  const seen = new Map();
  for (const { line, raw } of proseLines(readFileSync(file, 'utf8'))) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw);
    if (heading) {
      const slug = githubSlug(headingText(heading[1]));
      const count = seen.get(slug) ?? 0;
      anchors.add(count ? `${slug}-${count}` : slug);
      seen.set(slug, count + 1);
    }
    for (const match of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(match[1]);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

/** Link targets of one Markdown file: inline links, images, reference definitions and HTML href/src. */
function linksOf(file) {
  const links = [];
  for (const { number, line } of proseLines(readFileSync(file, 'utf8'))) {
    for (const match of line.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ number, target: match[1] });
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+".*")?\s*$/.exec(line);
    if (definition) links.push({ number, target: definition[1] });
    for (const match of line.matchAll(/\s(?:href|src)="([^"]+)"/g)) links.push({ number, target: match[1] });
  }
  return links;
}

/** The problem with one link of `from`, or undefined when it resolves. */
export function checkLink(from, target) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // http:, https:, mailto:
  const [rawPath, anchor] = target.split('#', 2);
  const path = decodeURIComponent(rawPath);
  const file = path === '' ? from : resolve(dirname(from), path);
  if (!file.startsWith(ROOT)) return `${target}: leaves the repository`;
  if (!existsSync(file)) return `${target}: ${relative(ROOT, file)} does not exist`;
  if (anchor === undefined) return undefined;
  if (statSync(file).isDirectory()) return `${target}: an anchor on a folder`;
  if (!file.endsWith('.md')) return undefined; // GitHub's line anchors (#L10) on source files
  if (!anchorsOf(file).has(decodeURIComponent(anchor))) return `${target}: ${relative(ROOT, file)} has no heading or id "${anchor}"`;
  return undefined;
}

/**
 * Documentation paths named in lib/ comments (`docs/stores.md#sizing-the-database-pool`,
 * `README.md#requirements`), which users follow from the JSDoc and error messages.
 */
function libReferences() {
  const references = [];
  for (const file of filesUnder(join(ROOT, 'lib'), (path) => path.endsWith('.ts'))) {
    for (const [index, line] of readFileSync(file, 'utf8').split('\n').entries()) {
      for (const match of line.matchAll(/\b((?:docs\/[\w./-]+\.md|(?:README|ARCHITECTURE|RELIABILITY|BENCHMARKS)\.md)(?:#[\w-]+)?)/g)) {
        references.push({ file, number: index + 1, target: match[1] });
      }
    }
  }
  return references;
}

/** Checks every link; returns { problems: string[], links: number, files: number }. */
export function checkLinks() {
  const problems = [];
  const files = markdownFiles();
  let links = 0;
  for (const file of files) {
    for (const { number, target } of linksOf(file)) {
      links++;
      const problem = checkLink(file, target);
      if (problem) problems.push(`${relative(ROOT, file)}:${number}: ${problem}`);
    }
  }
  for (const { file, number, target } of libReferences()) {
    links++;
    const problem = checkLink(join(ROOT, 'README.md'), target);
    if (problem) problems.push(`${relative(ROOT, file)}:${number}: ${problem}`);
  }
  return { problems, links, files: files.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { problems, links, files } = checkLinks();
  if (problems.length) {
    console.error(problems.join('\n'));
    console.error(`\n${problems.length} broken of ${links} links in ${files} Markdown files and lib/ comments.`);
    process.exit(1);
  }
  console.log(`${links} links in ${files} Markdown files and lib/ comments: none broken.`);
}
