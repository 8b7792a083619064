// The fast subset of the chaos suite's retry-budget scenario: the same app and measurement, with
// a one-second budget window instead of ten, so two windows take two seconds.
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amplification, describeAmplification, offerFixedRate, startFailingUpstream, type FailingUpstream } from '../../../chaos/budget/amplification.js';
import { retryBudgetModule } from '../../../chaos/budget/budget-app.js';
import { appUrl, createApp } from '../../support/app.js';

const BUDGET = { window: 1_000 } as const;
const RATE = 200;
/** Two windows, less the time the last requests' retries take to reach the dependency (see the chaos scenario). */
const DURATION_MS = 2 * BUDGET.window - 500;

describe('retry budget under a dependency failing 100 % with 503 (Express, real time)', () => {
  let upstream: FailingUpstream;
  let app: INestApplication;

  beforeAll(async () => {
    upstream = await startFailingUpstream();
    app = await createApp('express', { imports: [retryBudgetModule(upstream.url, BUDGET)] }, { listen: true });
  });
  afterAll(async () => {
    await app?.close();
    await upstream?.close();
  });

  it(`keeps upstream calls ÷ requests within 1.2 + the floor at ${RATE} req/s for two windows, every answer 503 problem+json`, async () => {
    const load = await offerFixedRate(`${await appUrl(app)}/budget`, RATE, DURATION_MS);
    const figure = amplification(load.requests, upstream.calls(), upstream.spanMs(), BUDGET);

    expect(load.unexpected).toEqual({});
    expect(load.expected).toBe(load.requests);
    // Retries happened (the budget was spent, not bypassed) and stayed within the bound.
    expect(figure.calls).toBeGreaterThan(load.requests * 1.1);
    expect(figure.withinBound, describeAmplification(figure, BUDGET)).toBe(true);
  }, 30_000);
});
