// bench:instructions' idempotent variants: the idempotency benchmark's POST /orders servers
// (bench/idempotency/server.ts, in-memory stores), ours and @node-idempotency/nestjs's side by side.
import type { OutgoingHttpHeaders } from 'node:http';
import type { ServerChild } from '../shared/children.js';
import { ORDER_BODY, type IdempotencyStoreKind } from '../idempotency/stores.js';

/**
 * `post` is POST /orders without `@Idempotent()`; `*-new-key` send a fresh `Idempotency-Key` with
 * every request (claim, handler, completion), `*-replay` the same completed key with every request
 * (answered from the store, the handler does not run); `idempotent-*` run our `@Idempotent()` on
 * InMemoryIdempotencyStore, `peer-*` @node-idempotency/nestjs on its in-memory adapter.
 */
export const IDEMPOTENT_VARIANTS = ['post', 'idempotent-new-key', 'idempotent-replay', 'peer-new-key', 'peer-replay'] as const;
export type IdempotentVariant = (typeof IDEMPOTENT_VARIANTS)[number];

/** The peer's instructions per request ÷ ours must reach this, new key and replay (issue 23). */
export const PEER_GOAL = 1.15;

/** Each peer variant and our variant doing the same work. */
export const PEER_PAIRS: readonly { readonly ours: IdempotentVariant; readonly peer: IdempotentVariant }[] = [
  { ours: 'idempotent-new-key', peer: 'peer-new-key' },
  { ours: 'idempotent-replay', peer: 'peer-replay' },
];

/** How each variant is served and driven, for the tables. */
export const IDEMPOTENT_VARIANT_LABELS: Record<IdempotentVariant, string> = {
  post: 'POST /orders, no `@Idempotent()`',
  'idempotent-new-key': '`@Idempotent()`, InMemoryIdempotencyStore, new key',
  'idempotent-replay': '`@Idempotent()`, InMemoryIdempotencyStore, replay',
  'peer-new-key': '@node-idempotency/nestjs, in-memory adapter, new key',
  'peer-replay': '@node-idempotency/nestjs, in-memory adapter, replay',
};

/** The idempotency-benchmark server (BENCH_STORE) each variant runs on. */
export const STORE_OF: Record<IdempotentVariant, IdempotencyStoreKind> = {
  post: 'bare',
  'idempotent-new-key': 'memory',
  'idempotent-replay': 'memory',
  'peer-new-key': 'nip-memory',
  'peer-replay': 'nip-memory',
};

/** The requests a variant's server is counted on. */
export interface RequestPlan {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
  /** The headers of the `n`-th request. */
  headersOf(n: number): OutgoingHttpHeaders;
  /** Why an answer is not the one being measured, or undefined when it is. */
  problemWith(status: number | undefined, headers: Readonly<Record<string, unknown>>): string | undefined;
}

// every key is 20 characters long, so hashing and storing them costs the same in every variant
const REPLAY_KEY = 'replay-key-000000000';
const newKey = (n: number) => `new-key-${String(n).padStart(12, '0')}`;

/** POST /orders with the benchmark's order: a fresh key per request, the completed replay key, or none. */
export function idempotentRequestPlan(variant: IdempotentVariant): RequestPlan {
  const scenario = variant === 'post' ? 'none' : variant.endsWith('-replay') ? 'replay' : 'new-key';
  const base = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(ORDER_BODY)) };
  const replayHeaders = { ...base, 'idempotency-key': REPLAY_KEY };
  return {
    method: 'POST',
    path: '/orders',
    body: ORDER_BODY,
    headersOf: scenario === 'none' ? () => base : scenario === 'replay' ? () => replayHeaders : (n) => ({ ...base, 'idempotency-key': newKey(n) }),
    problemWith(status, headers) {
      const replayed = headers['idempotent-replayed'] === 'true';
      if (status === 201 && replayed === (scenario === 'replay')) return undefined;
      return `POST /orders (${scenario}) answered ${status}${replayed ? ' (a replay)' : ''}; expected 201${scenario === 'replay' ? ', replayed' : ', not a replay'}.`;
    },
  };
}

/**
 * Checks the behaviour being counted before counting it: POST /orders with the replay key twice
 * must answer 201 and then, on an idempotent route, replay the same body exactly. Leaves the
 * replay key completed for the replay variants.
 */
export async function checkIdempotentRoute(server: ServerChild, variant: IdempotentVariant): Promise<void> {
  const post = async () => {
    const response = await fetch(`${server.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': REPLAY_KEY },
      body: ORDER_BODY,
      signal: AbortSignal.timeout(60_000),
    });
    return { status: response.status, body: await response.text(), replayed: response.headers.get('idempotent-replayed') === 'true' };
  };
  const first = await post();
  const second = await post();
  const idempotent = variant !== 'post';
  const ok = first.status === 201 && second.status === 201 && !first.replayed && second.replayed === idempotent && (second.body === first.body) === idempotent;
  if (!ok) {
    throw new Error(`${server.name}: unexpected answers ${JSON.stringify({ first, second })}; expected 201 then ${idempotent ? 'an exact replay' : 'a second execution'}.`);
  }
}
