// The docs checks can fail: the link checker finds a missing file and a missing anchor, computes
// GitHub's slugs, and a snippet region is cut out as the Markdown shows it.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLink, githubSlug } from '../../scripts/docs/links.mjs';
import { ROOT, SNIPPETS_DIR, snippetText } from '../../scripts/docs/snippets.mjs';

const scratch = join(ROOT, 'build', `doc-tools-${process.pid}`);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the link checker', () => {
  it("computes GitHub's heading slugs", () => {
    expect(githubSlug('`@Timeout(ms)` / `@Timeout({ total, attempt })`')).toBe('timeoutms--timeout-total-attempt-');
    expect(githubSlug('Keys: one breaker per what?')).toBe('keys-one-breaker-per-what');
    expect(githubSlug('3. Write the files')).toBe('3-write-the-files');
    expect(githubSlug('Redis or Valkey — döne')).toBe('redis-or-valkey--döne');
  });

  it('reports a missing file, a missing anchor, and accepts headings (duplicates numbered) and explicit ids', () => {
    mkdirSync(scratch, { recursive: true });
    const page = join(scratch, 'page.md');
    writeFileSync(page, '# Title\n\n## Usage\n\n## Usage\n\n<a id="custom"></a>\n\n```md\n## Not a heading\n```\n');
    expect(checkLink(page, 'missing.md')).toMatch(/does not exist/);
    expect(checkLink(page, '#nowhere')).toMatch(/has no heading or id "nowhere"/);
    expect(checkLink(page, '#not-a-heading')).toMatch(/has no heading/);
    expect(checkLink(page, '#usage')).toBeUndefined();
    expect(checkLink(page, '#usage-1')).toBeUndefined();
    expect(checkLink(page, '#custom')).toBeUndefined();
    expect(checkLink(page, 'page.md#title')).toBeUndefined();
    expect(checkLink(page, 'https://example.com/x#y')).toBeUndefined();
  });
});

describe('snippet regions', () => {
  it('shows a region dedented and a whole file without its region markers', () => {
    const dir = join(SNIPPETS_DIR, '..', '..', 'build', `doc-tools-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'region.ts'), 'const a = 1;\nfunction f() {\n  // #region shown\n  return a;\n  // #endregion shown\n}\n');
    const path = join('..', '..', 'build', `doc-tools-${process.pid}`, 'region.ts');
    expect(snippetText(path, 'shown')).toBe('return a;');
    expect(snippetText(path)).toBe('const a = 1;\nfunction f() {\n  return a;\n}');
    expect(() => snippetText(path, 'absent')).toThrow(/no "\/\/ #region absent"/);
  });
});
