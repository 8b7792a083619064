import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Test } from '@nestjs/testing';
import { RESOLVED_RESILIENCE_OPTIONS, type ResolvedResilienceOptions } from 'nest-resilience';
import { afterEach, describe, expect, it } from 'vitest';
import { AppModule, ResilienceConfig } from './options-factory.js';

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(resolve(here, '../../README.md'), 'utf8');

/** The `// #region readme` … `// #endregion` part of a snippet file. */
function regionOf(file: string): string {
  const match = /\/\/ #region readme\n([\s\S]*?)\n\/\/ #endregion/.exec(readFileSync(join(here, file), 'utf8'));
  if (!match) throw new Error(`${file} has no "// #region readme" … "// #endregion" block`);
  return match[1]!;
}

const snippets = readdirSync(here).filter((file) => file.endsWith('.ts') && !file.includes('.spec.') && !file.includes('.e2e-spec.'));

describe('README snippets', () => {
  it.each(snippets)('the README shows %s verbatim (the tested code is the documented code)', (file) => {
    const region = regionOf(file);
    expect(region.split('\n').length).toBeGreaterThan(3);
    expect(readme).toContain(`\`\`\`ts\n${region}\n\`\`\``);
  });

  describe('forRootAsync({ useClass })', () => {
    const deadline = process.env.REQUEST_DEADLINE_MS;
    afterEach(() => {
      if (deadline === undefined) delete process.env.REQUEST_DEADLINE_MS;
      else process.env.REQUEST_DEADLINE_MS = deadline;
    });

    it('builds the module options with the factory class\'s createResilienceOptions()', async () => {
      process.env.REQUEST_DEADLINE_MS = '12000';
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      try {
        const options = moduleRef.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS);
        expect(options.timeout).toEqual(expect.objectContaining({ status: 504, total: 12_000 }));
        expect(moduleRef.get(ResilienceConfig)).toBeInstanceOf(ResilienceConfig);
      } finally {
        await moduleRef.close();
      }
    });
  });
});
