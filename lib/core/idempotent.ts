import { systemClock, type Clock } from './clock.js';
import { ResilienceConfigError } from './errors.js';
import type { ResilienceEventSink } from './events.js';
import { IdempotencyCore } from './idempotency/idempotency-core.js';
import type { IdempotentRequest, IdempotentResponse } from './idempotency/idempotency-core.interface.js';
import { waitWhileInFlight } from './idempotency/in-flight-wait.js';
import { resolveIdempotencyOptions } from './idempotency/idempotency-options.interface.js';
import type { IdempotencyStore, StoredResponse } from './idempotency/idempotency-store.interface.js';
import { STORED_KIND } from './idempotency/response-encoding.js';

/**
 * Options of {@link idempotent}.
 * @publicApi
 */
export interface IdempotentFunctionOptions<A extends unknown[]> {
  /** Where records live: a durable store shared by every process for an exactly-once effect across them. */
  readonly store: IdempotencyStore;
  /** Reads the key from the call's arguments (1–255 printable ASCII); `undefined` means "no key". */
  readonly key: (...args: NoInfer<A>) => string | undefined;
  /** The operation's name in records' fingerprints and events. @default the function's name */
  readonly name?: string;
  /** Tenant or user the key belongs to, read from the arguments: keys of different scopes never meet. */
  readonly scope?: (...args: NoInfer<A>) => string | undefined | Promise<string | undefined>;
  /** Whether a call without a key is refused (`IdempotencyKeyMissingError`) or just runs. @default true */
  readonly required?: boolean;
  /** How long a completed call's result is kept and returned again, in ms. @default 86_400_000 (24 h) */
  readonly ttl?: number;
  /** Lease of a running call, renewed every `lease / 3` while it runs; a crashed call's key is taken over after it. @default 60_000 */
  readonly lease?: number;
  /** Largest stored result, in bytes. */
  readonly maxResponseBytes?: number;
  /** Clock of leases, retention and waits (`nest-resilience/testing`'s fake clock in tests). @default systemClock */
  readonly clock?: Clock;
  /** Receives `idempotency_*` events. */
  readonly events?: ResilienceEventSink;
  /** Warnings for operators. */
  readonly warn?: (message: string) => void;
}

/**
 * A result the first call with this key stored as an error (an error with an HTTP-like `status`
 * that the store kept), thrown again to a later call with the same key.
 * @publicApi
 */
export class IdempotentReplayedError extends Error {
  constructor(
    /** The stored status. */
    readonly status: number,
    /** The stored error body. */
    readonly body: unknown,
  ) {
    super(typeof (body as { detail?: unknown })?.detail === 'string' ? (body as { detail: string }).detail : `An earlier call with this key failed with status ${status}.`);
    this.name = 'IdempotentReplayedError';
  }
}

/**
 * Makes any async function idempotent, without Nest: the first call with a key runs `fn`, its
 * result is stored, and every later call with the same key gets the stored result without running
 * `fn` (the AWS Powertools `makeIdempotent` contract, on this library's stores). A call that finds
 * its key in flight waits for the first one (for at most one lease), then gets its result; never
 * two runs at once. A call with the same key and other arguments is refused
 * (`IdempotencyKeyReusedError`, 422); a failure releases the key, so the next call runs again.
 * The fingerprint is the arguments (canonical JSON). Same store contract, lease with heartbeat,
 * fencing and retention as `@Idempotent()`.
 * @example
 * const chargeOnce = idempotent(charge, { store, key: (order: Order) => order.paymentId });
 * await chargeOnce(order); // runs charge
 * await chargeOnce(order); // the stored result
 * @throws ResilienceConfigError when an option is invalid.
 * @publicApi
 */
export function idempotent<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: IdempotentFunctionOptions<A>): (...args: A) => Promise<Awaited<R>> {
  const { store, key, scope } = options;
  if (typeof key !== 'function') throw new ResilienceConfigError('idempotent(fn, options) needs key: (...args) => string, reading the key from the arguments.');
  const name = options.name ?? (fn.name || 'idempotent');
  const clock = options.clock ?? systemClock;
  const resolved = {
    ...resolveIdempotencyOptions(
      undefined,
      {
        required: options.required,
        ttl: options.ttl,
        lease: options.lease,
        ...(options.maxResponseBytes === undefined ? {} : { maxResponseBytes: options.maxResponseBytes }),
        scope: scope === undefined ? false : (args: A) => scope(...args),
      },
      undefined,
      `idempotent(${name})`,
    ),
    keyResolver: (args: A) => key(...args),
  };
  const core = new IdempotencyCore({ store, clock, events: options.events, warn: options.warn });
  const response: IdempotentResponse = { status: () => 200, replayableHeaders: () => ({}), setHeader: () => undefined };

  return async (...args: A): Promise<Awaited<R>> => {
    const request: IdempotentRequest = { name, options: resolved, method: 'CALL', url: name, headers: {}, body: args, route: name, request: args, hasUser: false };
    const execute = () =>
      core.execute(request, response, async () => ({ kind: 'value', value: await fn(...args), emissions: 1, fromHandler: true }));
    const answer = await waitWhileInFlight(await execute(), execute, clock, resolved.lease);
    switch (answer.kind) {
      case 'delivered':
        if (answer.outcome.kind === 'error') throw answer.outcome.error;
        return answer.outcome.value as Awaited<R>;
      case 'replay':
        return replayed(answer.response) as Awaited<R>;
      case 'rejected':
        throw answer.error;
    }
  };
}

/** The stored result, or the stored error thrown again. */
function replayed(stored: StoredResponse): unknown {
  const body = stored.bodyEncoding === 'empty' ? undefined : stored.bodyEncoding === 'text' ? (stored.body ?? '') : stored.body === null ? undefined : JSON.parse(stored.body);
  if (stored.headers[STORED_KIND] === 'error') throw new IdempotentReplayedError(stored.status, body);
  return body;
}
