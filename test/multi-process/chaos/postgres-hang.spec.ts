// The fast subset of the chaos suite's postgres-hang scenario: the same app processes, traffic and
// checks (chaos/postgres/hang.ts) with a 3 s SIGSTOP of every process of a PostgreSQL cluster of
// its own (never the shared one) and a 2 s query_timeout.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPostgresFault, type PostgresFaultPlan } from '../../../chaos/postgres/hang.js';
import { sigstopFault } from '../../../chaos/scenarios/postgres-hang.js';
import { startPostgres, type ThrowawayPostgres } from '../../../scripts/postgres.mjs';
import { MULTI_INSTANCE_APP } from '../../fixtures/idempotency/multi-instance.launcher.js';
import { requireBuilt } from '../../fixtures/spawn-app.js';
import { hasPostgres } from '../../support/postgres.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
/** Each built file and the source it must not be older than. */
const builtFrom: Array<[string, string]> = [
  [join(root, MULTI_INSTANCE_APP), join(root, 'test/fixtures/idempotency/multi-instance.app.ts')],
  [join(root, 'dist/typeorm/typeorm-idempotency.store.js'), join(root, 'lib/typeorm/typeorm-idempotency.store.ts')],
  [join(root, 'dist/core/idempotency/idempotency-core.js'), join(root, 'lib/core/idempotency/idempotency-core.ts')],
];
const HANG_MS = 3_000;
/**
 * The hang outlasts query_timeout, so requests in flight time out; the lease (a claim the server
 * applies when it resumes holds its key one lease) is shorter than the drain. The margin is the
 * suite's loaded-machine allowance (RELIABILITY.md); a second round trip to the silent server
 * would add a whole query_timeout.
 */
const PLAN: PostgresFaultPlan = { trafficBeforeMs: 1_000, trafficAfterMs: 1_500, drainLimitMs: 6_000, queryTimeoutMs: 2_000, leaseMs: 2_000, marginMs: 1_000, recoveryLimitMs: 4_000 };

describe.skipIf(!hasPostgres)('PostgreSQL hanging (SIGSTOP of all its processes) under traffic (2 app processes, both idempotency modes)', () => {
  let store: ThrowawayPostgres;
  let effects: ThrowawayPostgres;

  beforeAll(async () => {
    requireBuilt(builtFrom);
    const bin = process.env.PG_BIN || undefined;
    [store, effects] = await Promise.all([startPostgres({ bin, durable: true }), startPostgres({ bin })]);
  }, 60_000);
  afterAll(() => {
    store?.stop();
    effects?.stop();
  });

  it('only 503/409 + Retry-After while silent, each wait within work + query_timeout + margin, recovery without restart, 0 lost, 0 duplicates', async () => {
    const lines: string[] = [];
    const result = await runPostgresFault({
      root,
      label: 'fast-hang',
      databases: { storeUrl: store.url, storeJudgeUrl: store.socketUrl, effectsUrl: effects.url, effectsJudgeUrl: effects.socketUrl },
      plan: PLAN,
      fault: sigstopFault(store, HANG_MS),
      log: (line) => lines.push(line),
    });
    const failed = result.checks.filter((check) => !check.pass).map((check) => `${check.name}: ${check.detail}`);
    expect(failed, `${result.figure}\n${lines.join('\n')}`).toEqual([]);
    expect(result.checks.length).toBeGreaterThanOrEqual(6);
    // the fault caught requests: the bound was exercised, not vacuous
    expect(result.waits.length).toBeGreaterThan(0);
  }, 60_000);
});
