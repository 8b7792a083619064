// @Idempotent() POST route vs the same route bare, on memory, SQLite, PostgreSQL and Redis, and
// @node-idempotency/nestjs on its memory and Redis adapters: round trips per request (new key,
// replay) and requests per second (new keys, replays), side by side in one run.
//   npm run bench:idempotency                      full run (5 s × 5 interleaved rounds per case)
//   BENCH_DURATION=2 BENCH_ROUNDS=1 npm run bench:idempotency   quick run
//   BENCH_STORES=bare,memory,nip-memory npm run bench:idempotency   some servers only
// PostgreSQL: DATABASE_URL (a fresh database is created and dropped), else a throwaway server
// from scripts/postgres.mjs with PostgreSQL's durable defaults (fsync, synchronous_commit on).
// Redis: REDIS_URL, else a throwaway redis-server (scripts/redis.mjs). Either missing: its rows
// are skipped, loudly. The peer is installed on first use in bench/idempotency/peer.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdempotencyRecord } from 'nest-resilience/typeorm';
import { DataSource } from 'typeorm';
import { cpuPinning, onInterrupt, profiled, startServer, stopAll, type ServerChild } from '../shared/children.js';
import { readConfig } from '../shared/config.js';
import { interleave, measure, summarize, type LoadSpec, type Summary } from '../shared/load.js';
import { obtainPostgres, type BenchDatabase } from '../shared/postgres.js';
import { obtainRedis, RedisCommandCounter, type BenchRedis } from '../shared/redis.js';
import {
  commandLine,
  environment,
  formatMs,
  formatRatio,
  formatRps,
  formatUs,
  markdownTable,
  resultsDir,
  writeResults,
} from '../shared/report.js';
import type { Platform } from '../shared/server-harness.js';
import { IDEMPOTENCY_STORES, ORDER_BODY, REDIS_STORES, STORE_LABELS, type IdempotencyStoreKind, type RoundTripRecording } from './stores.js';
import { installPeer } from './install-peer.js';

const ROUND_TRIP_GOAL = { newKey: 2, replay: 1 } as const;
const ROUND_TRIP_SAMPLES = 5;
/** Time left after a response for statements sent after it (none expected) to be recorded too. */
const ROUND_TRIP_SETTLE_MS = 50;
const SCENARIOS = ['newKey', 'replay'] as const;
type Scenario = (typeof SCENARIOS)[number];
const SCENARIO_LABELS: Record<Scenario, string> = { newKey: 'new key', replay: 'replay' };

interface Target {
  readonly platform: Platform;
  readonly store: IdempotencyStoreKind;
  readonly server: ServerChild;
}

/** Per run, so keys never collide with an earlier run's records in a reused database. */
const RUN_ID = randomBytes(4).toString('hex');
/** The completed key a server's replay scenario sends (one per server: the PostgreSQL servers share a table). */
const replayKeyOf = (target: Target) => `bench-replay-${RUN_ID}-${target.platform}-${target.store}`;
let keySequence = 0;
const freshKey = () => `bench-${RUN_ID}-${++keySequence}`;

/** BENCH_STORES (comma-separated), else every server. */
function selectedStores(): IdempotencyStoreKind[] {
  const wanted = process.env.BENCH_STORES?.split(',').map((name) => name.trim()).filter(Boolean);
  if (!wanted) return [...IDEMPOTENCY_STORES];
  const unknown = wanted.filter((name) => !IDEMPOTENCY_STORES.includes(name as IdempotencyStoreKind));
  if (unknown.length) throw new Error(`BENCH_STORES names unknown servers (${unknown.join(', ')}); choose from ${IDEMPOTENCY_STORES.join(', ')}.`);
  return IDEMPOTENCY_STORES.filter((store) => store === 'bare' || wanted.includes(store));
}

async function main(): Promise<void> {
  // 5 interleaved rounds: with 16 cases per round on 2 shared cores, a 3-round median still moved
  // the peer ratios by ±0.1 from one run to the next
  const config = readConfig(undefined, undefined, { duration: 5, rounds: 5 });
  const log = (line: string) => console.error(line);
  const servers: ServerChild[] = [];
  let database: BenchDatabase | undefined;
  let redis: BenchRedis | undefined;
  let redisProbe: RedisCommandCounter | undefined;
  const sqliteDir = mkdtempSync(join(tmpdir(), 'nest-resilience-bench-'));
  const cleanUp = async () => {
    await database?.close().catch((error: unknown) => log(`Could not clean up PostgreSQL: ${(error as Error).message}`));
    database = undefined;
    redisProbe?.close();
    await redis?.close().catch((error: unknown) => log(`Could not stop Redis: ${(error as Error).message}`));
    redis = undefined;
    rmSync(sqliteDir, { recursive: true, force: true });
  };
  const forgetCleanUp = onInterrupt(cleanUp);
  // Pinned before the databases start, so a throwaway PostgreSQL or Redis inherits the load
  // generator's CPU: the server under test keeps its core to itself, as it would with the database
  // on its own host. Left floating, the scheduler put it on either core, from run to run.
  cpuPinning();
  try {
    let stores = selectedStores();
    let postgresNote = 'PostgreSQL not selected';
    if (stores.includes('postgres')) {
      // synchronous_commit on, as PostgreSQL ships: a completed key is durable when it is answered
      const postgres = await obtainPostgres(process.env, { durable: true });
      if ('skipped' in postgres) {
        stores = stores.filter((store) => store !== 'postgres');
        postgresNote = `PostgreSQL SKIPPED: ${postgres.skipped}`;
        log(`\n!!!!! ${postgresNote}\n!!!!! Set DATABASE_URL or install PostgreSQL (initdb, pg_ctl) to include it.\n`);
      } else {
        database = postgres;
        postgresNote = `PostgreSQL: ${postgres.source}`;
        await createSchema(postgres.url);
      }
    }
    let redisNote = 'Redis not selected';
    if (stores.some((store) => REDIS_STORES.includes(store))) {
      const obtained = await obtainRedis();
      if ('skipped' in obtained) {
        stores = stores.filter((store) => !REDIS_STORES.includes(store));
        redisNote = `Redis SKIPPED: ${obtained.skipped}`;
        log(`\n!!!!! ${redisNote}\n!!!!! Set REDIS_URL or install redis-server to include it.\n`);
      } else {
        redis = obtained;
        redisProbe = await RedisCommandCounter.start(obtained.url);
        redisNote = `Redis: ${obtained.source}`;
      }
    }
    if (stores.some((store) => store.startsWith('nip-'))) installPeer(log);
    log(`idempotency: ${config.platforms.join(' + ')}, stores ${stores.join(', ')}; warm-up ${config.warmup} s, ${config.rounds} round(s) × ${config.duration} s per case, ${config.connections} connections; ${postgresNote}; ${redisNote}`);

    const targets = await Promise.all(
      config.platforms.flatMap((platform) =>
        stores.map(async (store): Promise<Target> => {
          const env: Record<string, string> = { BENCH_PLATFORM: platform, BENCH_STORE: store };
          if (store === 'sqlite') env.BENCH_SQLITE_FILE = join(sqliteDir, `${platform}.db`);
          if (store === 'postgres') env.BENCH_PG_URL = database!.url;
          if (REDIS_STORES.includes(store)) env.BENCH_REDIS_URL = redis!.url;
          const server = await startServer(new URL('./server.js', import.meta.url), `idempotency-${platform}-${store}`, env);
          servers.push(server);
          return { platform, store, server };
        }),
      ),
    );
    for (const target of targets) await checkContract(target);

    const roundTrips: Record<string, Record<string, unknown>> = {};
    for (const target of targets) {
      if (target.store === 'sqlite' || target.store === 'postgres') {
        (roundTrips[target.platform] ??= {})[target.store] = await countRoundTrips(target);
      } else if (REDIS_STORES.includes(target.store)) {
        (roundTrips[target.platform] ??= {})[target.store] = await countRoundTrips(target, redisProbe);
      }
    }
    // MONITOR slows the server down for every client: off before anything is timed
    redisProbe?.close();
    redisProbe = undefined;

    const specsOf = (target: Target): Record<Scenario, LoadSpec> => ({
      newKey: {
        method: 'POST',
        path: '/orders',
        headers: { 'content-type': 'application/json' },
        body: ORDER_BODY,
        setupRequest: (request) => ({ ...request, headers: { ...request.headers, 'idempotency-key': freshKey() } }),
      },
      replay: {
        method: 'POST',
        path: '/orders',
        headers: { 'content-type': 'application/json', 'idempotency-key': replayKeyOf(target) },
        body: ORDER_BODY,
      },
    });
    const cpuOf = (target: Target) => () => target.server.call<number>('cpu');
    for (const target of targets) {
      for (const scenario of SCENARIOS) await measure(target.server.url, specsOf(target)[scenario], config.warmup / 2, config.connections);
    }
    log('warm-up done');

    const cases = SCENARIOS.flatMap((scenario) => targets.map((target) => ({ scenario, target })));
    const profileDir = config.cpuProfile ? join(resultsDir(), 'profiles') : undefined;
    const samples = await interleave(cases, config.rounds, async ({ scenario, target }, round) => {
      const profileWindow = round === 0 && profileDir ? join(profileDir, scenario) : undefined;
      const sample = await profiled(target.server, profileWindow, () =>
        measure(target.server.url, specsOf(target)[scenario], config.duration, config.connections, cpuOf(target)),
      );
      const failures = sample.non2xx || sample.errors ? `  non-2xx ${sample.non2xx} errors ${sample.errors} ${JSON.stringify(sample.statusCodes)}` : '';
      log(`  round ${round + 1}/${config.rounds} ${scenario.padEnd(7)} ${target.platform.padEnd(7)} ${target.store.padEnd(8)} ${formatRps(sample.rps).padStart(7)} req/s  p99 ${formatMs(sample.p99)}  cpu ${formatUs(sample.cpuUsPerRequest)}/req${failures}`);
      // a durable PostgreSQL flushes what a new-key run wrote in the background: a CHECKPOINT here
      // does it now, so the next case is not measured against its disk and CPU
      if (target.store === 'postgres' && scenario === 'newKey') await checkpoint(database!.url);
      return sample;
    });

    const results: Record<string, Record<string, unknown>> = {};
    const throughputTables: string[] = [];
    for (const platform of config.platforms) {
      const summaryOf = (store: IdempotencyStoreKind, scenario: Scenario): Summary => {
        const entry = cases.find((c) => c.scenario === scenario && c.target.platform === platform && c.target.store === store)!;
        return summarize(samples.get(entry)!);
      };
      results[platform] = {};
      const rows = IDEMPOTENCY_STORES.filter((store) => selectedStores().includes(store)).map((store) => {
        if (!stores.includes(store)) return [STORE_LABELS[store], 'skipped', '', '', '', '', '', '', '', ''];
        const cells: string[] = [STORE_LABELS[store]];
        const stored: Record<string, unknown> = {};
        for (const scenario of SCENARIOS) {
          const summary = summaryOf(store, scenario);
          const bare = summaryOf('bare', scenario);
          const ratio = summary.medianRps / bare.medianRps;
          stored[scenario] = {
            medianRps: summary.medianRps,
            medianP50Ms: summary.medianP50,
            medianP99Ms: summary.medianP99,
            medianCpuUsPerRequest: summary.medianCpuUs,
            ratioToBare: ratio,
            non2xx: summary.non2xx,
            errors: summary.errors,
            rounds: summary.rounds,
          };
          cells.push(formatRps(summary.medianRps), formatMs(summary.medianP99), formatRatio(ratio), formatUs(summary.medianCpuUs));
        }
        cells.push(String(summaryOf(store, 'newKey').non2xx + summaryOf(store, 'replay').non2xx + summaryOf(store, 'newKey').errors + summaryOf(store, 'replay').errors));
        results[platform][store] = stored;
        return cells;
      });
      throughputTables.push(
        `### ${platform}\n\n${markdownTable(
          [
            'route',
            'new key req/s',
            'p99',
            'vs bare',
            'server CPU / req',
            'replay req/s',
            'p99',
            'vs bare',
            'server CPU / req',
            'non-2xx + errors',
          ],
          rows,
        )}`,
      );
    }

    const roundTripTable = markdownTable(
      ['platform', 'store', 'new key: statements', 'new key: store operations', `goal ${ROUND_TRIP_GOAL.newKey}`, 'replay: statements', 'replay: store operations', `goal ${ROUND_TRIP_GOAL.replay}`],
      Object.entries(roundTrips).flatMap(([platform, byStore]) =>
        Object.entries(byStore).map(([store, counts]) => {
          const c = counts as RoundTripSummary;
          return [
            platform,
            store,
            c.newKey.label,
            c.newKey.operations,
            c.newKey.count === ROUND_TRIP_GOAL.newKey ? 'met' : `MISSED (${c.newKey.count})`,
            c.replay.label,
            c.replay.operations,
            c.replay.count === ROUND_TRIP_GOAL.replay ? 'met' : `MISSED (${c.replay.count})`,
          ];
        }),
      ),
    );

    console.log(`\n## Idempotency: database round trips per request\n`);
    console.log('Every statement sent to the database during exactly one request: the larger of TypeORM Logger `logQuery` and, on PostgreSQL, `pg.Client#query` calls on the wire (the store sends its per-request statements prepared, straight to the pool); on Redis, the commands clients sent (MONITOR, without the commands scripts run inside the server). BEGIN/COMMIT would count as round trips too (the non-transactional path sends none). The in-memory stores and the bare route make none.\n');
    console.log(roundTripTable);
    if (!stores.includes('postgres')) console.log(`\n**${postgresNote}**`);
    console.log(`\n## Idempotency: requests per second (${config.rounds} interleaved round(s) × ${config.duration} s per case, ${config.connections} connections, warm-up ${config.warmup} s)\n`);
    console.log('New key: every request carries a fresh `Idempotency-Key` (claim + handler + complete). Replay: every request carries the same, already completed key (the stored response is replayed, the handler does not run). The bare route gets the same headers and body.\n');
    console.log(`${throughputTables.join('\n\n')}\n`);
    const peerTable = againstPeer(results, config.platforms);
    if (peerTable) {
      console.log(`## Idempotency: against @node-idempotency/nestjs (same run; ours ÷ theirs, requests per second)\n`);
      console.log(`${peerTable}\n`);
    }
    const file = writeResults('idempotency.json', {
      benchmark: 'idempotency',
      command: commandLine('bench:idempotency'),
      config,
      postgres: postgresNote,
      roundTripGoal: ROUND_TRIP_GOAL,
      environment: environment(),
      roundTrips,
      results,
    });
    console.log(`Results written to ${file}`);
  } finally {
    await stopAll(servers);
    forgetCleanUp();
    await cleanUp();
  }
}

/** Goals of issue 15: our store's throughput ÷ the peer's on the comparable adapter. */
const PEER_PAIRS = [
  { ours: 'memory', theirs: 'nip-memory', goal: 1.1 },
  { ours: 'redis', theirs: 'nip-redis', goal: 1.0 },
  { ours: 'redis-node', theirs: 'nip-redis', goal: 1.0 },
] as const;

/** Ours ÷ @node-idempotency per platform, store pair and scenario, against the goal; '' when no pair ran. */
function againstPeer(results: Record<string, Record<string, unknown>>, platforms: readonly Platform[]): string {
  const rows: string[][] = [];
  for (const platform of platforms) {
    for (const { ours, theirs, goal } of PEER_PAIRS) {
      const mine = results[platform]?.[ours] as Record<Scenario, { medianRps: number }> | undefined;
      const peer = results[platform]?.[theirs] as Record<Scenario, { medianRps: number }> | undefined;
      if (!mine || !peer) continue;
      const cells = SCENARIOS.map((scenario) => mine[scenario].medianRps / peer[scenario].medianRps);
      rows.push([platform, `${STORE_LABELS[ours]} ÷ ${STORE_LABELS[theirs]}`, ...cells.map(formatRatio), `≥ ${goal.toFixed(1)}`, cells.every((ratio) => ratio >= goal) ? 'met' : 'MISSED']);
    }
  }
  return rows.length ? markdownTable(['platform', 'pair', 'new key', 'replay', 'goal', ''], rows) : '';
}

async function checkpoint(url: string): Promise<void> {
  const dataSource = await new DataSource({ type: 'postgres', url }).initialize();
  try {
    await dataSource.query('CHECKPOINT');
  } finally {
    await dataSource.destroy();
  }
}

/** Creates the records table once, so the servers (one per platform) share it without racing. */
async function createSchema(url: string): Promise<void> {
  const dataSource = await new DataSource({ type: 'postgres', url, entities: [IdempotencyRecord], synchronize: true }).initialize();
  await dataSource.destroy();
}

/** One POST with `key`: status, body and whether it was a replay. */
async function post(target: Target, key: string): Promise<{ status: number; body: string; replayed: boolean }> {
  const response = await fetch(`${target.server.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: ORDER_BODY,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.text(), replayed: response.headers.get('idempotent-replayed') === 'true' };
}

/**
 * Checks the behaviour being measured before measuring it: 201 for a new key, and for idempotent
 * routes an exact replay of the same body. Also completes the key the replay scenario uses.
 */
async function checkContract(target: Target): Promise<void> {
  const first = await post(target, replayKeyOf(target));
  const second = await post(target, replayKeyOf(target));
  const idempotent = target.store !== 'bare';
  const ok =
    first.status === 201 &&
    second.status === 201 &&
    !first.replayed &&
    second.replayed === idempotent &&
    (second.body === first.body) === idempotent;
  if (!ok) {
    throw new Error(`${target.server.name}: unexpected answers ${JSON.stringify({ first, second })}; expected 201 then ${idempotent ? 'an exact replay' : 'a second execution'}.`);
  }
}

interface RoundTripSummary {
  newKey: { count: number; label: string; operations: string; samples: RoundTripRecording[] };
  replay: { count: number; label: string; operations: string; samples: RoundTripRecording[] };
}

/**
 * Records the statements of single requests: new keys, then replays of a completed key. With
 * `redis`, counts the commands the Redis server ran instead (no other request is in flight then).
 */
async function countRoundTrips(target: Target, redis?: RedisCommandCounter): Promise<RoundTripSummary> {
  const record = async (key: string, expectReplay: boolean): Promise<RoundTripRecording> => {
    const before = redis ? redis.commands : await target.server.call('counters.start');
    const answer = await post(target, key);
    await new Promise((resolve) => setTimeout(resolve, ROUND_TRIP_SETTLE_MS));
    const recording = redis
      ? { statements: [], wireQueries: redis.commands - (before as number), storeOperations: [] }
      : await target.server.call<RoundTripRecording>('counters.stop');
    if (answer.status !== 201 || answer.replayed !== expectReplay) {
      throw new Error(`${target.server.name}: round-trip probe got ${answer.status} (replayed ${answer.replayed}).`);
    }
    return recording;
  };
  const newKeys: RoundTripRecording[] = [];
  const replays: RoundTripRecording[] = [];
  for (let i = 0; i < ROUND_TRIP_SAMPLES; i++) {
    const key = freshKey();
    newKeys.push(await record(key, false));
    replays.push(await record(key, true));
  }
  return { newKey: describeRecordings(newKeys), replay: describeRecordings(replays) };
}

function describeRecordings(samples: RoundTripRecording[]): RoundTripSummary['newKey'] {
  // the PostgreSQL store sends its per-request statements prepared, past TypeORM's logger: the wire count has them
  const counts = samples.map((s) => Math.max(s.statements.length, s.wireQueries ?? 0));
  const min = Math.min(...counts);
  const max = Math.max(...counts);
  const wire = samples.map((s) => s.wireQueries).filter((n): n is number => n !== null);
  const wireText = wire.length ? ` (wire: ${Math.min(...wire) === Math.max(...wire) ? wire[0] : `${Math.min(...wire)}–${Math.max(...wire)}`})` : '';
  const operations = [...new Set(samples.map((s) => s.storeOperations.join(' + ') || 'none'))].join(' / ');
  return { count: max, label: `${min === max ? min : `${min}–${max}`}${wireText}`, operations, samples };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
