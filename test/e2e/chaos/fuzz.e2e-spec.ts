// The fast subset of the chaos suite's fuzz scenario (`npm run chaos` runs ≥ 500 cases on Express
// and Fastify): the same generators and checks, fewer cases, one platform, a fixed seed, and only
// requests that reach the app. Malformed HTTP/1.1 messages (a lying or invalid Content-Length, a
// control character in a header value, no Host), which Node's HTTP server answers itself before
// any app code runs, are left to `npm run chaos`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzCases } from '../../../chaos/fuzz/cases.js';
import { runFuzz } from '../../../chaos/fuzz/judge.js';
import { startFuzzTarget, type FuzzTarget } from '../../../chaos/fuzz/sample-target.js';

/** Fixed, so every run sends the same cases. */
const SEED = 20_261_204;
const CASES = 200;

describe('generated requests against the sample app (Express, SQLite)', () => {
  let target: FuzzTarget;

  beforeAll(async () => {
    target = await startFuzzTarget('express');
  });
  afterAll(() => target?.close());

  it(`answers ${CASES} generated requests without a 5xx, with problem+json 4xx, storing nothing it refused`, async () => {
    const report = await runFuzz(target, fuzzCases(CASES, SEED, { malformedHttp: false }));

    expect(report.violations.map((violation) => `${violation.kind}: ${violation.detail} <- ${violation.request}`)).toEqual([]);
    // The cases reached both sides: accepted reports and refused requests.
    expect(report.statuses['202'] ?? 0).toBeGreaterThan(0);
    expect(report.refused).toBeGreaterThan(CASES / 4);
  }, 60_000);
});
