// The public surface of every entry point in package.json "exports", as committed reports under
// api-report/ (one `<entry>.api.md` each): every exported name with its kind, whether it exists at
// runtime, and its declaration as dist/*.d.ts ships it (JSDoc left out, private members too).
// A change of the public surface is then a visible diff in review.
//
//   npm run api:report            builds dist/ and rewrites api-report/ (commit the result)
//   node scripts/api-report.mjs   compares dist/ with api-report/ (exit 1 and the differences)
//
// test/package/api-report.spec.ts runs the comparison in `npm test`, and holds the root entry to
// MAX_ROOT_RUNTIME_EXPORTS names.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the reports live. */
export const REPORT_DIR = join(root, 'api-report');
/** The most runtime exports the root entry `nest-resilience` may have (issue 24: the Nest surface). */
export const MAX_ROOT_RUNTIME_EXPORTS = 80;

/** `nest-resilience`, `nest-resilience/core`… with their `.d.ts` and `.js` files in dist/. */
export function entryPoints() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return Object.entries(pkg.exports)
    .filter(([, target]) => typeof target === 'object' && target.types)
    .map(([subpath, target]) => ({
      name: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`,
      types: join(root, target.types),
      js: join(root, target.import ?? target.default),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** File name of an entry's report: `nest-resilience.api.md`, `nest-resilience-core.api.md`. */
export function reportFileOf(entryName) {
  return `${entryName.replace(/\//g, '-')}.api.md`;
}

const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });

function isPrivate(member) {
  if (member.name && ts.isPrivateIdentifier(member.name)) return true;
  return (ts.getCombinedModifierFlags(member) & ts.ModifierFlags.Private) !== 0;
}

/** Leading `export`/`declare`/`default` keywords are the same for every entry: left out. */
function withoutExportKeywords(text) {
  return text.replace(/^(export\s+)?(default\s+)?(declare\s+)?/, '');
}

function print(node) {
  return printer.printNode(ts.EmitHint.Unspecified, node, node.getSourceFile());
}

/** The declaration text of one node, as shipped, without comments and private members. */
function declarationText(node) {
  if (ts.isVariableDeclaration(node)) {
    const list = node.parent;
    const keyword = list.flags & ts.NodeFlags.Const ? 'const' : list.flags & ts.NodeFlags.Let ? 'let' : 'var';
    return `${keyword} ${print(node)};`;
  }
  if (ts.isClassDeclaration(node)) {
    const members = node.members.filter((member) => !isPrivate(member)).map((member) => `    ${print(member).replace(/\n/g, '\n    ')}`);
    const header = withoutExportKeywords(print(ts.factory.updateClassDeclaration(node, node.modifiers, node.name, node.typeParameters, node.heritageClauses, [])));
    return header.replace(/\{\s*\}$/, members.length ? `{\n${members.join('\n')}\n}` : '{\n}');
  }
  return withoutExportKeywords(print(node));
}

function kindOf(symbol) {
  const flags = symbol.flags;
  if (flags & ts.SymbolFlags.Class) return 'class';
  if (flags & ts.SymbolFlags.Function) return 'function';
  if (flags & ts.SymbolFlags.Enum) return 'enum';
  if (flags & ts.SymbolFlags.Variable) return 'const';
  if (flags & ts.SymbolFlags.Interface) return 'interface';
  if (flags & ts.SymbolFlags.TypeAlias) return 'type';
  if (flags & ts.SymbolFlags.Module) return 'namespace';
  return 'other';
}

/** The report text of every entry point, by file name, read from dist/. */
export async function generateReports() {
  const entries = entryPoints();
  const program = ts.createProgram(
    entries.map((entry) => entry.types),
    { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2023, skipLibCheck: true, noEmit: true, types: ['node'] },
  );
  const checker = program.getTypeChecker();
  const reports = new Map();
  const counts = {};
  for (const entry of entries) {
    const source = program.getSourceFile(entry.types);
    if (!source) throw new Error(`${entry.types} is missing: run npm run build first.`);
    const moduleSymbol = checker.getSymbolAtLocation(source);
    const runtime = new Set(Object.keys(await import(pathToFileURL(entry.js).href)));
    const exported = checker.getExportsOfModule(moduleSymbol).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const blocks = [];
    let types = 0;
    for (const symbol of exported) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      const isRuntime = runtime.has(symbol.name);
      if (!isRuntime) types++;
      const renamed = target.name !== symbol.name && target.name !== 'default' ? ` (declared as ${target.name})` : '';
      const texts = (target.declarations ?? []).map(declarationText);
      blocks.push(`// ${symbol.name}: ${kindOf(target)}${isRuntime ? '' : ', type only'}${renamed}\n${texts.join('\n')}`);
    }
    // exported at runtime but marked @internal, so stripped from the .d.ts: still reachable, still listed
    const undeclared = [...runtime].filter((name) => !exported.some((symbol) => symbol.name === name)).sort();
    for (const name of undeclared) blocks.push(`// ${name}: runtime only (@internal: no declaration in the .d.ts)`);
    counts[entry.name] = { runtime: runtime.size, typeOnly: types };
    const text = [
      `# API report: \`${entry.name}\``,
      '',
      `Generated from \`${entry.types.slice(root.length + 1)}\` by \`npm run api:report\`; do not edit. A change here is a change`,
      'of the public surface: review it as one.',
      '',
      `${exported.length + undeclared.length} exports: ${runtime.size} at runtime (${undeclared.length} of them @internal), ${types} type only.`,
      '',
      '```ts',
      blocks.join('\n\n'),
      '```',
      '',
    ].join('\n');
    reports.set(reportFileOf(entry.name), text);
  }
  return { reports, counts };
}

/** Differences between the committed reports and what dist/ exports now (empty: up to date). */
export async function checkReports() {
  const { reports, counts } = await generateReports();
  const problems = [];
  let committed = [];
  try {
    committed = readdirSync(REPORT_DIR).filter((file) => file.endsWith('.api.md'));
  } catch {
    // no folder yet: every report is missing
  }
  for (const [file, text] of reports) {
    let old;
    try {
      old = readFileSync(join(REPORT_DIR, file), 'utf8');
    } catch {
      problems.push(`missing: api-report/${file}`);
      continue;
    }
    if (old !== text) problems.push(`changed: api-report/${file}\n${lineDiff(old, text)}`);
  }
  for (const file of committed) if (!reports.has(file)) problems.push(`no longer an entry point: api-report/${file}`);
  return { problems, counts };
}

/** The lines only in one of two texts, `-` old and `+` new (enough to see what changed). */
function lineDiff(oldText, newText) {
  const oldLines = new Set(oldText.split('\n'));
  const newLines = new Set(newText.split('\n'));
  const removed = [...oldLines].filter((line) => !newLines.has(line)).map((line) => `    - ${line}`);
  const added = [...newLines].filter((line) => !oldLines.has(line)).map((line) => `    + ${line}`);
  return [...removed, ...added].slice(0, 40).join('\n');
}

export async function writeReports() {
  const { reports, counts } = await generateReports();
  rmSync(REPORT_DIR, { recursive: true, force: true });
  mkdirSync(REPORT_DIR, { recursive: true });
  for (const [file, text] of reports) writeFileSync(join(REPORT_DIR, file), text);
  return { files: reports.size, counts };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const write = process.argv.includes('--write');
  const { problems = [], counts } = write ? await writeReports() : await checkReports();
  for (const [name, count] of Object.entries(counts)) console.log(`${name.padEnd(26)} ${String(count.runtime).padStart(4)} runtime, ${String(count.typeOnly).padStart(4)} type only`);
  const rootCount = counts['nest-resilience']?.runtime ?? 0;
  if (rootCount > MAX_ROOT_RUNTIME_EXPORTS) {
    problems.push(`the root entry nest-resilience has ${rootCount} runtime exports, more than ${MAX_ROOT_RUNTIME_EXPORTS}: framework-free API belongs in nest-resilience/core`);
  }
  if (problems.length) {
    console.error(`\n${problems.join('\n')}\n\nThe public surface changed: if that is intended, run npm run api:report and commit api-report/.`);
    process.exit(1);
  }
  console.log(write ? `api-report/: ${Object.keys(counts).length} reports written.` : 'api-report/ matches dist/.');
}
