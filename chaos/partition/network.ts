// The partition's network: two network namespaces of the run's own (the app's and the databases'),
// joined by a veth pair, and the faults put on that pair with nftables (inside the app's
// namespace only: nothing outside the two namespaces is touched). Needs root, `ip` (iproute2) and
// `nft` (nftables). The addresses are from 198.18.0.0/15 (reserved for network benchmarks) and
// exist only inside the two namespaces.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The two namespaces and the link between them. */
export interface PartitionNetwork {
  /** Namespace of the app processes (and of the database they keep their own rows in). */
  readonly appNamespace: string;
  /** Namespace of PostgreSQL and Redis. */
  readonly databaseNamespace: string;
  readonly appAddress: string;
  readonly databaseAddress: string;
  /** The veth end in the app's namespace, where the faults apply. */
  readonly appInterface: string;
}

/** What the link does to packets. */
export type PacketFault = { readonly kind: 'none' } | { readonly kind: 'loss'; readonly percent: number } | { readonly kind: 'blackhole' };

const TABLE = 'nest_resilience_chaos';

/** Why the partition scenario cannot run here (not root, a tool missing), or undefined when it can. */
export function partitionUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return `network namespaces need root (running as uid ${process.getuid?.()})`;
  const missing = [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
  ].filter(([tool]) => !['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((dir) => existsSync(`${dir}/${tool}`)));
  if (missing.length > 0) return `${missing.map(([tool]) => tool).join(' and ')} not found: apt-get install -y --no-upgrade ${missing.map(([, pkg]) => pkg).join(' ')}`;
  return undefined;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates the namespaces (named after `id`), the veth pair between them, addresses and loopbacks. */
export function createPartitionNetwork(id: string): PartitionNetwork {
  const network: PartitionNetwork = {
    appNamespace: `nr-${id}-app`,
    databaseNamespace: `nr-${id}-db`,
    appAddress: '198.18.0.1',
    databaseAddress: '198.18.0.2',
    appInterface: `nr${id}a`.slice(0, 15),
  };
  const databaseInterface = `nr${id}d`.slice(0, 15);
  try {
    ip('netns', 'add', network.appNamespace);
    ip('netns', 'add', network.databaseNamespace);
    ip('link', 'add', network.appInterface, 'netns', network.appNamespace, 'type', 'veth', 'peer', 'name', databaseInterface, 'netns', network.databaseNamespace);
    for (const [namespace, link, address] of [
      [network.appNamespace, network.appInterface, network.appAddress],
      [network.databaseNamespace, databaseInterface, network.databaseAddress],
    ] as const) {
      ip('-n', namespace, 'addr', 'add', `${address}/30`, 'dev', link);
      ip('-n', namespace, 'link', 'set', link, 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
    }
  } catch (error) {
    destroyPartitionNetwork(network);
    throw error;
  }
  return network;
}

/** Deletes both namespaces (which deletes the veth pair and the rules with them). */
export function destroyPartitionNetwork(network: PartitionNetwork): void {
  for (const namespace of [network.appNamespace, network.databaseNamespace]) {
    try {
      ip('netns', 'del', namespace);
    } catch {
      // never created, or already gone
    }
  }
}

/**
 * Puts `fault` on the app's end of the link, both directions (replacing the previous one), with
 * nftables inside the app's namespace: `loss` drops that share of packets at random
 * (`numgen random`), `blackhole` drops them all, `none` lets them through.
 */
export function setPacketFault(network: PartitionNetwork, fault: PacketFault): void {
  const verdict = fault.kind === 'loss' ? `numgen random mod 100 < ${Math.round(fault.percent)} drop` : fault.kind === 'blackhole' ? 'drop' : undefined;
  const rules = [
    `table inet ${TABLE}`,
    `delete table inet ${TABLE}`,
    ...(verdict
      ? [
          `table inet ${TABLE} {`,
          `  chain input { type filter hook input priority 0; policy accept; iifname "${network.appInterface}" ${verdict}; }`,
          `  chain output { type filter hook output priority 0; policy accept; oifname "${network.appInterface}" ${verdict}; }`,
          `}`,
        ]
      : []),
  ].join('\n');
  // `table …` then `delete table …`: deleting needs the table to exist, creating an empty one first makes it idempotent
  execFileSync('ip', ['netns', 'exec', network.appNamespace, 'nft', '-f', '-'], { input: `${rules}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}
