// `npm run docs:check`: every check of the docs, with its time. The same checks run in `npm test`
// (test/docs/docs.spec.ts); this is the quick way to run them alone.
import { checkApiReference } from './api.mjs';
import { checkLinks } from './links.mjs';
import { syncSnippets } from './snippets.mjs';

let failed = false;
function step(name, run) {
  const started = performance.now();
  const { problems, summary } = run();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (problems.length) {
    failed = true;
    console.error(`✗ ${name} (${seconds} s)\n  ${problems.join('\n  ')}`);
  } else {
    console.log(`✓ ${name}: ${summary} (${seconds} s)`);
  }
}

step('snippets', () => {
  const { problems, blocks } = syncSnippets();
  return { problems, summary: `${blocks} blocks equal their files in docs/snippets/` };
});
// the reference first: the link check reads the generated pages too
step('API reference', () => {
  const { problems, files } = checkApiReference();
  return { problems, summary: `${files} pages, every public symbol documented, docs/api/ up to date` };
});
step('links', () => {
  const { problems, links, files } = checkLinks();
  return { problems, summary: `${links} links in ${files} Markdown files and lib/ comments resolve` };
});
if (failed) process.exit(1);
