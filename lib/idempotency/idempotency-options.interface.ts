import type { IdempotencyStore } from './idempotency-store.interface.js';

/**
 * Options of `@Idempotent()`; the same fields under `forRoot({ idempotency })` are the defaults.
 * Route options override class options, which override module options.
 * (Owned by the idempotency work; extend, do not rename.)
 * @publicApi
 */
export interface IdempotentOptions {
  /** Request header carrying the key. @default 'Idempotency-Key' */
  header?: string;
  /** Reads the key from the request instead of the header. */
  keyResolver?: (request: unknown) => string | undefined;
  /** Whether a request without a key is rejected with 400 `idempotency_key_missing`. @default true */
  required?: boolean;
  /**
   * Tenant or user the key belongs to; runs after guards. `false` opts out of scoping (and of the
   * warning logged once when `req.user` exists but no scope is configured).
   */
  scope?: ((request: any) => string | undefined | Promise<string | undefined>) | false;
  /** How long a completed response is replayed, in ms. @default 86_400_000 (24 h) */
  ttl?: number;
  /** Lease length in ms; renewed by a heartbeat every `lease / 3` while the handler runs. @default 60_000 */
  lease?: number;
  /** Which handler outcomes are stored for replay. @default (status) => status < 500 */
  storeIf?: (status: number) => boolean;
  /** Largest response body stored for replay, in bytes. @default 1_048_576 */
  maxStoredBodyBytes?: number;
  /** Extra response headers replayed besides the built-in allow-list. @default [] */
  replayHeaders?: string[];
  /** Run the handler and store the record in one database transaction. @default false */
  transactional?: boolean;
  /** Run the handler without idempotency when the store is unreachable (instead of 503). @default false */
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
