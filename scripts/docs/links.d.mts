/** Every .md file of the repository outside installed and built folders. */
export function markdownFiles(): string[];
/** GitHub's slug of a heading's text. */
export function githubSlug(text: string): string;
/** The anchors a Markdown file offers (heading slugs and explicit ids). */
export function anchorsOf(file: string): Set<string>;
/** The problem with one link of the Markdown file `from`, or undefined when it resolves. */
export function checkLink(from: string, target: string): string | undefined;
/** Checks every link of the repository's Markdown and the documentation paths named in lib/. */
export function checkLinks(): { problems: string[]; links: number; files: number };
