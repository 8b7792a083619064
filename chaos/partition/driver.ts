// The partition scenario's driver (compiled to build/chaos/partition/driver.js), started by
// chaos/scenarios/partition.ts inside the app's network namespace: the app processes it starts
// live there too, and reach PostgreSQL and Redis (in the databases' namespace) only over the veth
// pair, through the latency relay. It runs the PostgreSQL traffic and checks of postgres-hang, then
// the Redis ones of redis-hang, each under the same sequence: added latency, packet loss, a black
// hole, healed. Stdout: `LOG <text>` progress lines, then `RESULT <json>`.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { runPostgresFault, type FaultMarks, type PostgresFault, type PostgresFaultPlan } from '../postgres/hang.js';
import { runRedisOutage, type RedisFault, type RedisOutagePlan } from '../redis/outage.js';
import { sleep } from '../shared/scenario.js';
import { setPacketFault, type PartitionNetwork } from './network.js';

/** What the scenario hands the driver (env PARTITION, JSON). */
export interface PartitionSetup {
  readonly root: string;
  readonly network: PartitionNetwork;
  /** The cluster in the databases' namespace: its port there, and its Unix socket for the judge. */
  readonly store: { readonly port: number; readonly socketUrl: string };
  /** The cluster in the app's namespace (the lease-mode rows), reached on its loopback. */
  readonly effects: { readonly url: string; readonly socketUrl: string };
  readonly redis: { readonly port: number };
  readonly phases: PartitionPhases;
  readonly relayPorts: { readonly postgres: number; readonly redis: number };
}

/** The fault sequence. */
export interface PartitionPhases {
  /** Added round-trip latency and how long it lasts. */
  readonly latencyMs: number;
  readonly latencyPhaseMs: number;
  /** Share of packets dropped, each direction, and how long. */
  readonly lossPercent: number;
  readonly lossPhaseMs: number;
  /** How long every packet is dropped. */
  readonly blackholeMs: number;
}

/** The two runs' results, as the scenario reads them. */
export interface PartitionResult {
  readonly postgres: { figure: string; threshold: string; checks: Array<{ name: string; pass: boolean; detail: string }>; data: Record<string, unknown> };
  readonly redis: { figure: string; threshold: string; checks: Array<{ name: string; pass: boolean; detail: string }>; data: Record<string, unknown> };
}

/** The PostgreSQL run's plan: postgres-hang's settings. */
export const POSTGRES_PLAN: PostgresFaultPlan = {
  trafficBeforeMs: 3_000,
  trafficAfterMs: 4_000,
  drainLimitMs: 15_000,
  queryTimeoutMs: 5_000,
  leaseMs: 5_000,
  marginMs: 1_000,
  recoveryLimitMs: 5_000,
};

const log = (text: string) => process.stdout.write(`LOG ${text}\n`);

/** Starts the latency relay (in this namespace) and resolves once it listens. */
async function startRelay(setup: PartitionSetup): Promise<ChildProcess> {
  const routes = [
    { listen: setup.relayPorts.postgres, host: setup.network.databaseAddress, port: setup.store.port },
    { listen: setup.relayPorts.redis, host: setup.network.databaseAddress, port: setup.redis.port },
  ];
  const relay = spawn(process.execPath, [join(setup.root, 'build', 'chaos', 'partition', 'relay.js')], {
    env: { ...process.env, ROUTES: JSON.stringify(routes) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    relay.stdout!.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('READY') && resolve());
    relay.once('exit', (code) => reject(new Error(`the latency relay exited with ${code}`)));
  });
  return relay;
}

/**
 * Latency, then loss, then the black hole; `onSilent` is called when the black hole starts and the
 * returned promise resolves when it should end.
 */
async function degradeThenCut(setup: PartitionSetup, relay: ChildProcess, onSilent: () => void, onSlow: () => void = () => undefined): Promise<void> {
  const { phases, network } = setup;
  onSlow();
  relay.stdin!.write(`delay ${Math.round(phases.latencyMs / 2)}\n`);
  log(`+${phases.latencyMs} ms round trip (relay) for ${phases.latencyPhaseMs / 1000} s`);
  await sleep(phases.latencyPhaseMs);
  relay.stdin!.write('delay 0\n');
  setPacketFault(network, { kind: 'loss', percent: phases.lossPercent });
  log(`${phases.lossPercent} % of packets dropped each way (nftables) for ${phases.lossPhaseMs / 1000} s`);
  await sleep(phases.lossPhaseMs);
  setPacketFault(network, { kind: 'blackhole' });
  onSilent();
  log(`black hole: every packet dropped for ${phases.blackholeMs / 1000} s`);
}

function heal(setup: PartitionSetup): void {
  setPacketFault(setup.network, { kind: 'none' });
  log('healed: no delay, no drop');
}

function describePhases(phases: PartitionPhases): string {
  return `partition (+${phases.latencyMs} ms for ${phases.latencyPhaseMs / 1000} s, ${phases.lossPercent} % loss for ${phases.lossPhaseMs / 1000} s, black hole ${phases.blackholeMs / 1000} s)`;
}

async function main(): Promise<void> {
  const setup = JSON.parse(process.env.PARTITION!) as PartitionSetup;
  const relay = await startRelay(setup);
  try {
    const postgresFault: PostgresFault = {
      describe: () => describePhases(setup.phases),
      async inject(marks: FaultMarks) {
        await degradeThenCut(setup, relay, () => marks.silent(), () => marks.slow?.());
        await sleep(setup.phases.blackholeMs);
      },
      async heal() {
        heal(setup);
      },
    };
    const postgres = await runPostgresFault({
      root: setup.root,
      label: 'partition',
      databases: {
        storeUrl: `postgres://postgres@127.0.0.1:${setup.relayPorts.postgres}/postgres`,
        storeJudgeUrl: setup.store.socketUrl,
        effectsUrl: setup.effects.url,
        effectsJudgeUrl: setup.effects.socketUrl,
      },
      plan: POSTGRES_PLAN,
      fault: postgresFault,
      log: (text) => log(`postgres: ${text}`),
    });

    const redisFault: RedisFault = {
      name: 'black hole',
      begin: (_progress, silent, slow) => degradeThenCut(setup, relay, silent, slow),
      async end() {
        heal(setup);
      },
    };
    // A connection that stayed open through the black hole resumes at its next TCP retransmission,
    // and the kernel doubled that wait while nothing came back (up to about the black hole's
    // length); PostgreSQL's connections were closed by their timeouts and are made anew. Keys whose
    // claims ran late are held one lease (3 s).
    const redisPlan: RedisOutagePlan = {
      trafficBeforeMs: 3_000,
      outageMs: setup.phases.blackholeMs,
      trafficAfterMs: 4_000,
      drainLimitMs: 15_000,
      leaseMs: 3_000,
      fault: redisFault,
      recoveryLimitMs: setup.phases.blackholeMs + 3_000 + 3_000,
    };
    const notOurs = () => {
      throw new Error('the partition run never stops redis-server');
    };
    const redis = await runRedisOutage({
      root: setup.root,
      redis: { url: `redis://127.0.0.1:${setup.relayPorts.redis}`, kill: notOurs, start: notOurs, freeze: notOurs, thaw: notOurs },
      plan: redisPlan,
      log: (text) => log(`redis: ${text}`),
    });
    const result: PartitionResult = {
      postgres: { figure: postgres.figure, threshold: postgres.threshold, checks: [...postgres.checks], data: postgres.data },
      redis: { figure: redis.figure, threshold: redis.threshold, checks: [...redis.checks], data: redis.data },
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    relay.stdin!.end();
    relay.kill();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`partition driver failed: ${String((error as Error)?.stack ?? error)}\n`);
    process.exit(1);
  },
);
