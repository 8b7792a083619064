// The docs as a reader gets them: the README's shape, every code block equal to the snippet file
// that snippets.e2e-spec.ts compiles and runs, no broken link or anchor (README, docs/, the
// generated API reference, the other Markdown of the repository), and an API reference that
// documents every public symbol and is what the JSDoc generates.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkApiReference } from '../../scripts/docs/api.mjs';
import { checkLinks, githubSlug } from '../../scripts/docs/links.mjs';
import { ROOT, syncSnippets } from '../../scripts/docs/snippets.mjs';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('README.md', () => {
  it('is at most 300 lines, with a table of contents whose every entry is a section of it', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(300);
    const contents = readme.split('\n## Contents\n')[1]?.split('\n## ')[0];
    expect(contents, 'a "## Contents" section').toBeDefined();
    const entries = [...contents!.matchAll(/\]\(#([\w-]+)\)/g)].map((match) => match[1]);
    const sections = [...readme.matchAll(/^## (.+)$/gm)].map((match) => githubSlug(match[1]!.replace(/`/g, '')));
    expect(entries.length).toBeGreaterThanOrEqual(5);
    expect(sections).toEqual(expect.arrayContaining(entries));
  });

  it('keeps the two set-up commands, the requirements and the complete app right after installation', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    const order = ['## Requirements', '## Installation', '<!-- snippet: app/src/app.module.ts -->', '<!-- snippet: app/src/main.ts -->', '<!-- snippet: app/src/payments.controller.ts -->'];
    const at = order.map((text) => readme.indexOf(text));
    expect(at.every((index) => index >= 0), `README shows ${order.join(', ')}`).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });
});

describe('the docs', () => {
  it('show every snippet file verbatim, and no TypeScript that is not a compiled snippet', () => {
    const { problems, blocks } = syncSnippets();
    expect(problems).toEqual([]);
    expect(blocks).toBeGreaterThan(30);
  });

  it('have an API reference that documents every public symbol and is what the JSDoc generates (docs/api/)', () => {
    const { problems, files } = checkApiReference();
    expect(problems).toEqual([]);
    expect(files).toBeGreaterThan(100);
  }, 180_000);

  it('have no broken link or anchor (README, docs/, the API reference, every other Markdown file, lib/ comments)', () => {
    const { problems, links } = checkLinks();
    expect(problems).toEqual([]);
    expect(links).toBeGreaterThan(500);
  });
});
