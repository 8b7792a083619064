/** The repository's root folder. */
export const ROOT: string;
/** docs/snippets/, where the code the docs show lives. */
export const SNIPPETS_DIR: string;
/** Every file below `dir` (recursively), as absolute paths, filtered by `keep`. */
export function filesUnder(dir: string, keep?: (path: string) => boolean): string[];
/** README.md and the Markdown files of docs/ (the generated API reference aside). */
export function documentationFiles(): string[];
/** What a snippet marker shows: the whole file without region markers, or one region, dedented. */
export function snippetText(path: string, region?: string): string;
/** Compares (or, with `write`, rewrites) every snippet block of the documentation with its file. */
export function syncSnippets(options?: { write?: boolean }): { problems: string[]; shown: Set<string>; blocks: number; written: string[] };
