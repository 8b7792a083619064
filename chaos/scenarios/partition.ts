// Scenario: a network partition between the app and its databases. Two network namespaces of the
// run's own joined by a veth pair: PostgreSQL and Redis in one, the app processes (and the database
// they keep their own rows in) in the other. Under traffic the link gets 200 ms of added round trip,
// then 30 % packet loss each way, then a black hole (every packet dropped) for a few seconds, then
// heals. The PostgreSQL traffic and checks are postgres-hang's, the Redis ones redis-hang's, run
// one after the other by a driver inside the app's namespace (chaos/partition/driver.ts).
//
// Needs root (namespaces), `ip` (iproute2) and `nft` (nftables): without them the scenario says so
// loudly and is skipped, and with CI=true a skip is a failure. Latency comes from a relay process
// (chaos/partition/relay.ts) because this kernel has no netem qdisc; loss and the black hole are
// nftables rules on the veth. Nothing outside the two namespaces is touched.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { onInterrupt } from '../../bench/shared/children.js';
import { loadPostgresScript } from '../../bench/shared/postgres.js';
import { loadRedisScript } from '../../bench/shared/redis.js';
import { packageRoot } from '../../bench/shared/report.js';
import type { ThrowawayPostgres } from '../../scripts/postgres.mjs';
import type { ThrowawayRedis } from '../../scripts/redis.mjs';
import type { PartitionPhases, PartitionResult, PartitionSetup } from '../partition/driver.js';
import { createPartitionNetwork, destroyPartitionNetwork, partitionUnsupported, type PartitionNetwork } from '../partition/network.js';
import type { ChaosContext, Scenario, Verdict } from '../shared/scenario.js';

const PHASES: PartitionPhases = { latencyMs: 200, latencyPhaseMs: 3_000, lossPercent: 30, lossPhaseMs: 4_000, blackholeMs: 6_000 };
/** Ports of the relay inside the app's namespace (a fresh namespace: nothing else listens there). */
const RELAY_PORTS = { postgres: 15_432, redis: 16_379 };

export const partitionScenario: Scenario = {
  id: 'partition',
  title: `app and databases in separate network namespaces: +${PHASES.latencyMs} ms, then ${PHASES.lossPercent} % loss, then a ${PHASES.blackholeMs / 1000} s black hole, healed (PostgreSQL both modes, then Redis store and shared state)`,
  async run({ log, env }: ChaosContext): Promise<Verdict> {
    const unsupported = partitionUnsupported();
    if (unsupported) {
      const ci = env.CI === 'true' || env.CI === '1';
      const bar = '!'.repeat(78);
      log(`${bar}\npartition SKIPPED: ${unsupported}.${ci ? '\nCI=true: a skipped scenario is a failure.' : ''}\n${bar}`);
      return { figure: `SKIPPED: ${unsupported}`, threshold: 'runs (root, ip, nft)', pass: !ci, skipped: true };
    }
    const network = createPartitionNetwork(process.pid.toString(36));
    const started: { store?: ThrowawayPostgres; effects?: ThrowawayPostgres; redis?: ThrowawayRedis } = {};
    const cleanUp = async () => {
      started.store?.stop();
      started.effects?.stop();
      await started.redis?.stop();
      destroyPartitionNetwork(network);
    };
    const forgetInterrupt = onInterrupt(cleanUp);
    try {
      const { startPostgres } = await loadPostgresScript();
      const { startRedis } = await loadRedisScript();
      log(`namespaces ${network.appNamespace} (${network.appAddress}) and ${network.databaseNamespace} (${network.databaseAddress}), veth ${network.appInterface}`);
      [started.store, started.effects, started.redis] = await Promise.all([
        startPostgres({ durable: true, netns: network.databaseNamespace, listenAddress: network.databaseAddress }),
        startPostgres({ netns: network.appNamespace }),
        startRedis({ netns: network.databaseNamespace, bindAddress: network.databaseAddress }),
      ]);
      const setup: PartitionSetup = {
        root: packageRoot(),
        network,
        store: { port: started.store.port, socketUrl: started.store.socketUrl },
        effects: { url: started.effects.url, socketUrl: started.effects.socketUrl },
        redis: { port: started.redis.port },
        phases: PHASES,
        relayPorts: RELAY_PORTS,
      };
      const result = await runDriver(setup, network, log);
      const checks = [...result.postgres.checks, ...result.redis.checks];
      return {
        figure: `PostgreSQL: ${result.postgres.figure} | Redis: ${result.redis.figure}`,
        threshold: `PostgreSQL: ${result.postgres.threshold}; Redis: ${result.redis.threshold}`,
        pass: checks.every((check) => check.pass),
        data: { phases: PHASES, postgres: result.postgres.data, redis: result.redis.data },
      };
    } finally {
      forgetInterrupt();
      await cleanUp();
    }
  },
};

/** Runs the driver inside the app's namespace and returns what it measured. */
function runDriver(setup: PartitionSetup, network: PartitionNetwork, log: (line: string) => void): Promise<PartitionResult> {
  const driver = spawn('ip', ['netns', 'exec', network.appNamespace, process.execPath, join(setup.root, 'build', 'chaos', 'partition', 'driver.js')], {
    env: { ...process.env, PARTITION: JSON.stringify(setup) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let result: PartitionResult | undefined;
  let stderr = '';
  let buffered = '';
  driver.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (buffered + chunk).split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('LOG ')) log(line.slice(4));
      else if (line.startsWith('RESULT ')) result = JSON.parse(line.slice(7)) as PartitionResult;
    }
  });
  driver.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    driver.once('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`the partition driver exited with ${code} without a result: ${stderr.slice(-2_000)}`));
    });
  });
}
