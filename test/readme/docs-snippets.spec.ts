import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { ResilienceEvents, ResilienceService, type ResilienceEvent } from 'nest-resilience';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../support/app.js';
import { AppModule, ResilienceSettings } from '../../docs/snippets/steering-reload.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const guides = readdirSync(join(root, 'docs')).filter((file) => file.endsWith('.md'));

/** Each `<!-- snippet: path -->` of a guide and the fenced block right after it. */
function includes(guide: string): Array<{ path: string; shown: string }> {
  const text = readFileSync(join(root, 'docs', guide), 'utf8');
  return [...text.matchAll(/<!-- snippet: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)].map((match) => ({ path: match[1]!, shown: match[2]! }));
}

describe('docs/ guides show their snippets verbatim', () => {
  it.each(guides)('%s', (guide) => {
    const found = includes(guide);
    for (const { path, shown } of found) {
      const source = readFileSync(join(root, path), 'utf8');
      const region = /\/\/ #region docs\n([\s\S]*?)\n\/\/ #endregion/.exec(source);
      expect(region, `${path} has a "// #region docs" block`).not.toBeNull();
      expect(shown).toBe(region![1]);
    }
  });

  it('docs/steering.md includes its three snippets', () => {
    expect(includes('steering.md').map((snippet) => snippet.path)).toEqual([
      'docs/snippets/steering-rate-limit.ts',
      'docs/snippets/steering-reload.ts',
      'docs/snippets/steering-last-good.ts',
    ]);
  });
});

describe('the reload snippet (docs/snippets/steering-reload.ts) runs', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('starts from the source, reloads from it and from the admin route, and refuses an invalid body with the start-up text', async () => {
    app = await createApp('express', { imports: [AppModule] });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    app.get(ResilienceSettings).changes.next({ retry: { maxAttempts: 5 } });
    expect(events.filter((event) => event.event === 'options_reloaded')).toMatchObject([{ detail: 'retry changed; every policy kept its state' }]);
    const refused = await request(app.getHttpServer()).post('/admin/resilience').send({ retry: { maxAttempts: 0 } }).expect(500);
    expect(refused.body).toMatchObject({ code: 'config_invalid' });
    expect(events.at(-1)).toMatchObject({ event: 'options_reload_refused' });
    expect(events.at(-1)?.detail).toMatch(/retry.maxAttempts is 0/);
    const applied = await request(app.getHttpServer()).post('/admin/resilience').send({ timeout: { total: 5_000 } }).expect(201);
    expect(applied.body).toEqual({ changed: ['timeout'], resets: [] });
    expect(app.get(ResilienceService)).toBeDefined();
  });
});
