// The fast subset of the chaos suite's fuzz scenario (`npm run chaos` runs ≥ 500 cases on Express
// and Fastify): the same generators and checks, fewer cases, one platform, a fixed seed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzCases } from '../../chaos/fuzz/cases.js';
import { runFuzz } from '../../chaos/fuzz/judge.js';
import { startFuzzTarget, type FuzzTarget } from '../../chaos/fuzz/sample-target.js';

/** Fixed, so a failure here is reproduced by `CHAOS_SEED=20261204 npm run chaos -- --only=fuzz`. */
const SEED = 20_261_204;
const CASES = 200;

describe('generated requests against the sample app (Express, SQLite)', () => {
  let target: FuzzTarget;

  beforeAll(async () => {
    target = await startFuzzTarget('express');
  });
  afterAll(() => target?.close());

  it(`answers ${CASES} generated requests without a 5xx, with problem+json 4xx, storing nothing it refused`, async () => {
    const report = await runFuzz(target, fuzzCases(CASES, SEED));

    expect(report.violations.map((violation) => `${violation.kind}: ${violation.detail} <- ${violation.request}`)).toEqual([]);
    // The cases reached both sides: accepted reports and refused requests.
    expect(report.statuses['202'] ?? 0).toBeGreaterThan(0);
    expect(report.refused).toBeGreaterThan(CASES / 4);
  }, 60_000);
});
