// TypeDoc configuration of the API reference (docs/api/, Markdown so it renders on GitHub).
// `npm run docs:api` writes it; `npm test` (test/docs/api-reference.spec.ts) regenerates it into a
// temp folder and fails when a public symbol has no JSDoc, a {@link} is broken, or docs/api differs.
//
// The entry points are the package's own: every `types` file of package.json `exports`, mapped
// back from dist/ to its source in lib/ (tsconfig.build.json's outDir and rootDir), so the
// reference documents exactly what a user can import, whatever the folders inside lib/ are.
import { readFileSync } from 'node:fs';
import { OptionDefaults } from 'typedoc';

const manifest = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

/** `./dist/http-client/index.d.ts` → `./lib/http-client/index.ts` */
const sourceOf = (types) => types.replace(/^\.\/dist\//, './lib/').replace(/\.d\.ts$/, '.ts');

const entryPoints = Object.entries(manifest.exports)
  .filter(([subpath]) => subpath !== './package.json')
  .map(([, target]) => sourceOf(target.types));

/** @type {Partial<import('typedoc').TypeDocOptions & import('typedoc-plugin-markdown').PluginOptions>} */
export default {
  entryPoints,
  tsconfig: './tsconfig.build.json',
  plugin: ['typedoc-plugin-markdown'],
  out: './docs/api',
  // docs/api/README.md is the index GitHub shows for the folder
  entryFileName: 'README.md',
  readme: 'none',
  name: 'nest-resilience API reference',
  // no "Defined in file:line": every edit of a source file would otherwise change the reference
  disableSources: true,
  excludeInternal: true,
  excludePrivate: true,
  // Nest's own marker, carried by every public symbol; it says nothing to a reader. A block tag (not
  // a modifier) so that it ends the `@example` before it instead of joining its code.
  blockTags: [...OptionDefaults.blockTags, '@publicApi'],
  excludeTags: [...OptionDefaults.excludeTags, '@publicApi'],
  sort: ['kind', 'alphabetical'],
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  // Internal plumbing that appears in the published typings only as the type of a member users
  // never call (the policies' callback-form `run`, constructors Nest's injector calls): documented
  // where it is defined, deliberately not importable.
  intentionallyNotExported: ['Step', 'Work', 'Settle', 'IdempotencyErrorInit', 'ResiliencePipelines', 'ResolvedConsoleOptions'],
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true,
  // typedoc-plugin-markdown: one page per class, interface, function…; tables for option members
  outputFileStrategy: 'members',
  interfacePropertiesFormat: 'table',
  classPropertiesFormat: 'table',
  typeDeclarationFormat: 'table',
  parametersFormat: 'table',
  hidePageHeader: true,
  useCodeBlocks: true,
};
