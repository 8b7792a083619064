import type { INestApplication } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../../sample-app/app.module.js';
import { runDemo } from '../../../sample-app/demo.js';
import { startModelService, type ModelService } from '../../../sample-app/model-service/model-service.js';
import { ReportQueue } from '../../../sample-app/reports/report-queue.service.js';
import { appUrl, createApp } from '../../support/app.js';

// `npm run demo` against the sample app listening on loopback, with budgets shortened so the
// whole tour (hung model, breaker break included) takes seconds instead of half a minute.
describe('npm run demo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sample-demo-'));
  let app: INestApplication;
  let model: ModelService;

  beforeAll(async () => {
    model = await startModelService({ port: 0, log: () => undefined });
    app = await createApp(
      'express',
      {
        imports: [
          AppModule.forRoot({
            sqliteFile: join(dir, 'demo.sqlite'),
            modelServiceUrl: model.url,
            logLevel: 'silent',
            demoHold: true,
            generation: { totalMs: 1_500, attemptMs: 400 },
            breaker: { breakDurationMs: 500 },
          }),
        ],
      },
      { listen: true },
    );
  });

  afterAll(async () => {
    await app?.get(ReportQueue).idle();
    await app?.close();
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('walks every step of the tour and reports each one as passed', async () => {
    const lines: string[] = [];
    const result = await runDemo({
      baseUrl: await appUrl(app),
      modelUrl: model.url,
      out: (line) => lines.push(line),
      holdMs: 1_000,
      recoveryTimeoutMs: 10_000,
    });
    expect(result.rows.filter((row) => !row.ok)).toEqual([]);
    expect(result.ok).toBe(true);
    const output = lines.join('\n');
    for (const step of ['duplicate POST', 'concurrent duplicate', 'same key, other body', 'flaky model', 'hung model', 'model breaks contract', 'model throttles (429)', 'model down', 'model back', 'slow model (chaos)']) {
      expect(output).toContain(step);
    }
    const url = await appUrl(app);
    expect(output).toContain(`Watch it live in the resilience console: ${url}/resilience (login demo / demo)`);
    expect(output).toContain(`All ${result.rows.length} checks passed.`);
  }, 60_000);
});
