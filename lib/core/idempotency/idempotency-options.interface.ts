import { ResilienceConfigError } from '../errors.js';
import { DEFAULT_FINGERPRINT_LIMITS, type FingerprintLimits } from './fingerprint.js';
import type { IdempotencyStore } from './idempotency-store.interface.js';

/**
 * Options of `@Idempotent()`; the same fields under `forRoot({ idempotency })` are the defaults.
 * Route options override class options, which override module options.
 * @publicApi
 */
export interface IdempotentOptions {
  /** Request header carrying the key. @default 'Idempotency-Key' */
  header?: string;
  /**
   * Reads the key from the request instead of the header (the header is then ignored). The value is
   * checked like a header value: 1–255 printable ASCII characters. `undefined` means "no key".
   */
  keyResolver?: (request: any) => string | undefined;
  /**
   * Reads the key from what the handler receives, in every context: `(body, request)` on HTTP,
   * `(data, rpcContext)` for a `@MessagePattern` / `@EventPattern`, `(job)` for a BullMQ
   * processor, the method's own arguments on a provider method. Checked like a header value
   * (1–255 printable ASCII); `undefined` means "no key". Cannot be combined with `keyResolver`.
   * Without it, the key is read from the `header` (the packet metadata or message headers of a
   * microservice message), from the job's deduplication id or id for a BullMQ job; a provider
   * method must have one.
   * @example
   * @EventPattern('payment.settled')
   * @Idempotent({ key: (event: PaymentSettled) => event.eventId })
   */
  key?: (payload: any, context: any, ...more: any[]) => string | undefined;
  /** Whether a request without a key is rejected with 400 `idempotency_key_missing`. @default true */
  required?: boolean;
  /**
   * Tenant or user the key belongs to; runs after guards, so `request.user` is set. `false` opts
   * out of scoping (and of the warning logged once per route when `request.user` exists but no
   * scope is configured). Keys of different scopes never meet: user A's key never replays to B.
   * @default undefined (one global scope, with the warning above)
   * Outside HTTP it is called like `key`: `(data, rpcContext)` for a microservice message, `(job)`
   * for a BullMQ job, the arguments of a provider method.
   * @example
   * @Idempotent({ scope: (req) => req.user.tenantId })
   */
  scope?: ((request: any, context?: any, ...more: any[]) => string | undefined | Promise<string | undefined>) | false;
  /** How long a completed response is replayed, in ms. @default 86_400_000 (24 h) */
  ttl?: number;
  /**
   * Lease length in ms; renewed by a heartbeat every `lease / 3` while the handler runs. It is how
   * long a request that crashed (or whose instance froze) keeps its key "in progress" (409).
   * @default the route's total deadline + 5 s ({@link DEADLINE_LEASE_MARGIN_MS}) when the route has
   * one (`@Timeout({ total })`, 30 s on any route with a resilience decorator), else 60_000. A
   * lease you set is used as it is.
   */
  lease?: number;
  /**
   * Which handler outcomes are stored for replay. `error` is the `HttpException` the handler threw
   * (undefined for a returned value). Outcomes not stored release the key: a retry runs again.
   * @default (status) => status < 500
   */
  storeIf?: (status: number, error?: unknown) => boolean;
  /**
   * Largest response body kept for replay, in UTF-8 bytes, in every store. A larger response is
   * still delivered once, and its key completes without the body: the handler never runs again for
   * that key, and its replays answer the original status with the problem
   * `idempotency_response_not_kept` (the original succeeded; its body was not kept). An
   * `idempotency_response_not_kept` event is emitted and the route is named once in a warning.
   * Streams, files, buffers and multi-value Observables are treated the same way (never kept).
   * @default 1_048_576 (1 MiB)
   */
  maxResponseBytes?: number;
  /**
   * Former name of {@link maxResponseBytes} (same meaning); give one of them.
   * @deprecated use `maxResponseBytes`.
   */
  maxStoredBodyBytes?: number;
  /**
   * Deepest nesting of objects and arrays in a request body that is fingerprinted (the body itself
   * is depth 1). A deeper body is refused with 400 `idempotency_body_too_deep` before the key is
   * claimed, so a hostile body cannot exhaust the stack. At most 1000.
   * @default 64
   */
  maxBodyDepth?: number;
  /**
   * Largest request body fingerprinted, as canonical JSON in UTF-8 bytes. A larger body is refused
   * with 413 `idempotency_body_too_large` before the key is claimed. Your body parser's own limit
   * (Express 100 KB, Fastify 1 MiB by default) usually answers first.
   * @default 1_048_576 (1 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Extra response headers replayed besides the built-in allow-list (`location`, `content-type`,
   * `content-language`, `content-location`, `etag`, `last-modified`). `set-cookie`,
   * `content-length`, `date` and hop-by-hop headers are never replayed.
   * @default []
   */
  replayHeaders?: string[];
  /**
   * Run the handler and store the record in one database transaction (the store must implement
   * `runInTransaction`, as `TypeOrmIdempotencyStore` does). The handler reads the transaction with
   * `@IdempotencyTransaction()` or `currentIdempotencyTransaction()`.
   * @default false
   */
  transactional?: boolean;
  /**
   * Run the handler without idempotency when the store is unreachable, instead of answering 503.
   * Only for routes where a duplicate is harmless. Cannot be combined with `transactional`.
   * @default false
   */
  failOpen?: boolean;
}

/**
 * Module-wide idempotency settings: route options plus the store and names.
 * @publicApi
 */
export interface IdempotencyModuleOptions extends IdempotentOptions {
  /** Where records live. @default new InMemoryIdempotencyStore() (single process only) */
  store?: IdempotencyStore;
  /** Namespace of this app's records, so apps can share one table. @default 'default' */
  namespace?: string;
  /** Write raw keys to logs and events instead of a hash. @default false */
  logKeys?: boolean;
  /** Run `store.purgeExpired()` every this many ms (`0`: never). @default 0 */
  purgeInterval?: number;
}

/**
 * The options of one `@Idempotent()` route after merging route ⊕ class ⊕ module options and
 * applying defaults. Computed once per route.
 * @publicApi
 */
export interface ResolvedIdempotencyOptions {
  /** Lower-case name of the key header (how Node exposes request headers). */
  readonly header: string;
  /** The key header name as configured, for messages and the echoed response header. */
  readonly headerName: string;
  /** Reads the key instead of the header, when configured. */
  readonly keyResolver?: (request: any) => string | undefined;
  /** Reads the key from the handler's payload and context (the context's adapter turns it into a `keyResolver`). */
  readonly key?: (payload: any, context: any, ...more: any[]) => string | undefined;
  /** Whether a request without a key is refused (400). */
  readonly required: boolean;
  /** The scope resolver, `false` (explicit opt-out) or `undefined` (not configured). */
  readonly scope: ((request: any, context?: any, ...more: any[]) => string | undefined | Promise<string | undefined>) | false | undefined;
  /** Retention of a completed response, in ms. */
  readonly ttl: number;
  /** Lease length, in ms (heartbeat every `lease / 3`). */
  readonly lease: number;
  /**
   * The route's total deadline, in ms, when it has one: no request of the route can still be
   * running longer than this, so a 409's `Retry-After` never asks to wait more.
   */
  readonly deadline: number | undefined;
  /** Which handler outcomes are stored. */
  readonly storeIf: (status: number, error?: unknown) => boolean;
  /** Largest response body kept for replay, in bytes. */
  readonly maxResponseBytes: number;
  /** @deprecated the same value as `maxResponseBytes`. */
  readonly maxStoredBodyBytes: number;
  /** Bounds on the request body that is fingerprinted. */
  readonly fingerprintLimits: FingerprintLimits;
  /** Lower-case names of every header replayed (built-in allow-list plus `replayHeaders`). */
  readonly replayHeaders: ReadonlySet<string>;
  /** Whether the handler runs in the store's transaction. */
  readonly transactional: boolean;
  /** Whether the handler runs without idempotency when the store is unreachable. */
  readonly failOpen: boolean;
  /** Namespace of the records (module option). */
  readonly namespace: string;
  /** Whether events carry raw keys instead of hashes (module option). */
  readonly logKeys: boolean;
}

/**
 * Response headers replayed by default: representation metadata only.
 * @publicApi
 */
export const DEFAULT_REPLAY_HEADERS: readonly string[] = [
  'location',
  'content-type',
  'content-language',
  'content-location',
  'etag',
  'last-modified',
];

/** Headers that describe one transmission or one client, never the stored representation. */
const NEVER_REPLAYED = new Set([
  'set-cookie',
  'content-length',
  'date',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'idempotent-replayed',
]);

/** Whether a response header may be stored and replayed at all. @internal */
export function isReplayableHeaderName(name: string): boolean {
  return !NEVER_REPLAYED.has(name.toLowerCase());
}

const DEFAULTS = {
  header: 'Idempotency-Key',
  required: true,
  ttl: 86_400_000,
  lease: 60_000,
  maxResponseBytes: 1_048_576,
  namespace: 'default',
};

/**
 * What the default lease adds to a route's total deadline: the time a request timed out at its
 * deadline may still take to answer and release its key, plus clock differences between instances
 * and the store. A crashed request's key is free this long after its deadline.
 * @publicApi
 */
export const DEADLINE_LEASE_MARGIN_MS = 5_000;

/** Default of `storeIf`: everything but server errors. @publicApi */
export const storeBelow500 = (status: number): boolean => status < 500;

/** Deepest `maxBodyDepth` accepted: recursion this deep is still far from Node's stack limit. */
const MAX_BODY_DEPTH = 1000;

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Merges route, class and module options (in that precedence) with the defaults and validates the
 * result. Throws a {@link ResilienceConfigError} naming the fix for a configuration that cannot
 * work; `where` (e.g. `ReportsController.create`) is put in the message. `routeDeadlineMs`, the
 * route's total timeout when it has one, sets the default lease (deadline +
 * {@link DEADLINE_LEASE_MARGIN_MS}) and bounds a 409's `Retry-After`.
 * @publicApi
 */
export function resolveIdempotencyOptions(
  moduleOptions: IdempotencyModuleOptions | undefined,
  routeOptions: IdempotentOptions | undefined,
  classOptions: IdempotentOptions | undefined,
  where = 'an @Idempotent() route',
  routeDeadlineMs?: number,
): ResolvedIdempotencyOptions {
  const merged: IdempotencyModuleOptions = {
    ...withResponseLimit(moduleOptions, 'forRoot({ idempotency })'),
    ...withResponseLimit(classOptions, where),
    ...withResponseLimit(routeOptions, where),
  };
  const header = merged.header ?? DEFAULTS.header;
  if (!HEADER_NAME.test(header)) {
    throw new ResilienceConfigError(`The idempotency header name "${header}" of ${where} is not a valid HTTP header name; use a token such as "Idempotency-Key".`);
  }
  const ttl = positive(merged.ttl ?? DEFAULTS.ttl, 'ttl', where);
  const deadline = routeDeadlineMs !== undefined && Number.isFinite(routeDeadlineMs) && routeDeadlineMs > 0 ? routeDeadlineMs : undefined;
  const lease = positive(merged.lease ?? (deadline === undefined ? DEFAULTS.lease : deadline + DEADLINE_LEASE_MARGIN_MS), 'lease', where);
  if (lease < 3) {
    throw new ResilienceConfigError(`The idempotency lease of ${where} is ${lease} ms; it must be at least 3 ms (it is renewed every lease / 3).`);
  }
  const maxResponseBytes = positive(merged.maxResponseBytes ?? DEFAULTS.maxResponseBytes, 'maxResponseBytes', where);
  const maxBodyBytes = positive(merged.maxBodyBytes ?? DEFAULT_FINGERPRINT_LIMITS.maxBytes, 'maxBodyBytes', where);
  const maxBodyDepth = merged.maxBodyDepth ?? DEFAULT_FINGERPRINT_LIMITS.maxDepth;
  if (!Number.isInteger(maxBodyDepth) || maxBodyDepth < 1 || maxBodyDepth > MAX_BODY_DEPTH) {
    throw new ResilienceConfigError(`The idempotency option maxBodyDepth of ${where} must be a whole number from 1 to ${MAX_BODY_DEPTH}; got ${String(maxBodyDepth)}.`);
  }
  const replayHeaders = new Set(DEFAULT_REPLAY_HEADERS);
  for (const name of merged.replayHeaders ?? []) {
    const lower = name.toLowerCase();
    if (!isReplayableHeaderName(lower)) {
      throw new ResilienceConfigError(`The header "${name}" in replayHeaders of ${where} can never be replayed (it describes one transmission or one client); remove it from replayHeaders.`);
    }
    replayHeaders.add(lower);
  }
  const transactional = merged.transactional ?? false;
  const failOpen = merged.failOpen ?? false;
  if (transactional && failOpen) {
    throw new ResilienceConfigError(`${capitalise(where)} sets both transactional and failOpen; a transactional handler needs the store's transaction, so it cannot run without the store. Remove one of them.`);
  }
  const namespace = merged.namespace ?? DEFAULTS.namespace;
  if (namespace.length === 0 || namespace.length > 100) {
    throw new ResilienceConfigError(`The idempotency namespace "${namespace}" must be 1 to 100 characters long; choose a shorter name.`);
  }
  if (merged.key !== undefined && typeof merged.key !== 'function') {
    throw new ResilienceConfigError(`The idempotency option key of ${where} must be a function such as (data) => data.eventId; got ${typeof merged.key}.`);
  }
  if (merged.key !== undefined && merged.keyResolver !== undefined) {
    throw new ResilienceConfigError(`${capitalise(where)} sets both key and keyResolver; they do the same thing. Keep key (it works in every context) and remove keyResolver.`);
  }
  if (merged.scope !== undefined && merged.scope !== false && typeof merged.scope !== 'function') {
    throw new ResilienceConfigError(`The idempotency scope of ${where} must be a function of the request or false; got ${typeof merged.scope}.`);
  }
  return {
    header: header.toLowerCase(),
    headerName: header,
    keyResolver: merged.keyResolver,
    key: merged.key,
    required: merged.required ?? DEFAULTS.required,
    scope: merged.scope,
    ttl,
    lease,
    deadline,
    storeIf: merged.storeIf ?? storeBelow500,
    maxResponseBytes,
    maxStoredBodyBytes: maxResponseBytes,
    fingerprintLimits: { maxDepth: maxBodyDepth, maxBytes: maxBodyBytes },
    replayHeaders,
    transactional,
    failOpen,
    namespace,
    logKeys: moduleOptions?.logKeys ?? false,
  };
}

function positive(value: number, name: string, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ResilienceConfigError(`The idempotency option ${name} of ${where} must be a positive number of ${name.endsWith('Bytes') ? 'bytes' : 'milliseconds'}; got ${String(value)}.`);
  }
  return value;
}

/**
 * One level's options with `maxStoredBodyBytes` (the former name) read as `maxResponseBytes`, so
 * a route's either name overrides the module's either name.
 */
function withResponseLimit(options: IdempotencyModuleOptions | undefined, where: string): Partial<IdempotencyModuleOptions> {
  const defined = definedOnly(options);
  const { maxStoredBodyBytes, ...rest } = defined;
  if (maxStoredBodyBytes === undefined) return rest;
  if (rest.maxResponseBytes !== undefined && rest.maxResponseBytes !== maxStoredBodyBytes) {
    throw new ResilienceConfigError(
      `The idempotency options of ${where} set both maxResponseBytes (${rest.maxResponseBytes}) and maxStoredBodyBytes (${maxStoredBodyBytes}), its former name; keep maxResponseBytes only.`,
    );
  }
  return { ...rest, maxResponseBytes: maxStoredBodyBytes };
}

/** Drops `undefined` members so they do not override lower-precedence values when spread. */
function definedOnly<T extends object>(options: T | undefined): Partial<T> {
  if (!options) return {};
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
