import type { ResilienceEventSink } from '../events.js';

/**
 * What a store may report to the application using it; the idempotency core hands it to
 * {@link IdempotencyStore.observe} once.
 * @publicApi
 */
export interface IdempotencyStoreObserver {
  /** The application's event stream (`idempotency_evicted`, …). */
  readonly events?: ResilienceEventSink;
  /** Warnings for operators (a Nest `Logger.warn` in the Nest adapter). */
  readonly warn?: (message: string) => void;
}

/**
 * What the store needs to claim a key. The caller (the idempotency core) has already validated the key
 * and computed the fingerprint; the store never sees the request body.
 * @publicApi
 */
export interface IdempotencyClaim {
  /** Application namespace, so several apps can share one table. @default 'default' */
  readonly namespace: string;
  /** Tenant or user the key belongs to; `''` for global keys. Never null. */
  readonly scope: string;
  /** The client's `Idempotency-Key` (1–255 printable ASCII). */
  readonly key: string;
  /** sha256 hex of scope, method, route and canonical body. */
  readonly fingerprint: string;
  /** HTTP method, for diagnostics. */
  readonly method: string;
  /** Route path, for diagnostics. */
  readonly path: string;
  /** Lease length in ms: how long the claim stays owned without a heartbeat. */
  readonly leaseMs: number;
  /** Retention in ms: how long a completed response is replayed. */
  readonly ttlMs: number;
}

/**
 * A response kept for replay. Headers are already filtered to the replay allow-list.
 * @publicApi
 */
export interface StoredResponse {
  /** HTTP status code. */
  readonly status: number;
  /** Allow-listed response headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body, encoded by the idempotency core (JSON text for objects), or null when there is none. */
  readonly body: string | null;
  /** How `body` is encoded: `json` (parse it back), `text` (send as is), `empty`. */
  readonly bodyEncoding: 'json' | 'text' | 'empty';
}

/**
 * Proof of ownership returned by a successful claim. Every later write (heartbeat, complete,
 * release) is a compare-and-set on `owner`: once another request has taken the key over, the
 * stale owner's writes change nothing.
 * @publicApi
 */
export interface IdempotencyLease {
  /** Stable id of the record (hash of namespace, scope and key). */
  readonly recordId: string;
  /** Fencing token of this owner (unique per claim). */
  readonly owner: string;
  /** Monotonic counter, +1 on every takeover; hand it to downstream systems that can fence. */
  readonly fence: number;
}

/**
 * Result of {@link IdempotencyStore.claim}.
 * - `acquired`: the caller owns the key and must run the handler, then `complete` or `release`.
 * - `completed`: a response is stored; replay it if `sameRequest`, else answer 422.
 * - `in_progress`: another owner holds a live lease; answer 409 (or 422 if not `sameRequest`).
 * @publicApi
 */
export type IdempotencyClaimResult =
  | {
      /** The key is this request's now: run the handler. */
      readonly state: 'acquired';
      /** The lease to heartbeat, complete or release. */
      readonly lease: IdempotencyLease;
      /** Whether an expired lease of another owner was taken over. */
      readonly takeover: boolean;
    }
  | {
      /** The key already has a stored response. */
      readonly state: 'completed';
      /** Whether the fingerprint matches (replay) or not (422). */
      readonly sameRequest: boolean;
      /** The stored response. */
      readonly response: StoredResponse;
    }
  | {
      /** Another request holds the key. */
      readonly state: 'in_progress';
      /** Whether the fingerprint matches (409) or not (422). */
      readonly sameRequest: boolean;
      /** Remaining lease of the holder, ms (the 409's `Retry-After`). */
      readonly retryAfterMs: number;
    };

/**
 * Outcome of the work run by {@link IdempotencyStore.runInTransaction}: `store` keeps `response` in
 * the same transaction as the handler's writes and commits; `rollback` undoes everything (the key
 * is left free, as if the request never happened).
 * @publicApi
 */
export type TransactionalOutcome<T> =
  | {
      /** Store the response and commit. */
      readonly action: 'store';
      /** The response to store. */
      readonly response: StoredResponse;
      /** What the work produced, returned to the caller. */
      readonly value: T;
    }
  | {
      /** Roll everything back. */
      readonly action: 'rollback';
      /** Why: rethrown to the caller after the rollback. */
      readonly error: unknown;
    };

/**
 * Result of {@link IdempotencyStore.runInTransaction}: either the work ran (and was committed or
 * rolled back), or the key was already taken and the work did not run.
 * @publicApi
 */
export type TransactionalResult<T> =
  | {
      /** The work ran and its transaction ended. */
      readonly state: 'executed';
      /** What the work produced. */
      readonly value: T;
    }
  | Exclude<
      IdempotencyClaimResult,
      {
        /** Every claim result but `acquired`: the key was taken and the work did not run. */
        state: 'acquired';
      }
    >;

/**
 * Durable record of idempotency keys. All lease and retention times are measured on the store's
 * own clock (the database server's `now()` for SQL stores), never on the app instances' clocks.
 *
 * Implementations: `InMemoryIdempotencyStore` (one process, tests), `TypeOrmIdempotencyStore`
 * from `nest-resilience/typeorm` (PostgreSQL, SQLite) and `RedisIdempotencyStore` from
 * `nest-resilience/redis` (Redis, Valkey; the server's `TIME`). Errors thrown by any method mean "the store
 * is unreachable" and make the idempotency core answer 503 (fail closed).
 * @publicApi
 */
export interface IdempotencyStore {
  /**
   * Atomically claims a key: inserts it, takes over an expired lease with the same fingerprint, or
   * reuses a record whose retention ended. Otherwise reports what is there. One statement.
   */
  claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult>;
  /** Extends the lease by `leaseMs`. `false`: the lease was lost (taken over or released). */
  heartbeat(lease: IdempotencyLease, leaseMs: number): Promise<boolean>;
  /** Stores the response and ends the lease; replayed for `ttlMs`. `false`: the lease was lost. */
  complete(lease: IdempotencyLease, response: StoredResponse, ttlMs: number): Promise<boolean>;
  /** Deletes the claim so a retry runs again. `false`: the lease was lost (nothing changed). */
  release(lease: IdempotencyLease): Promise<boolean>;
  /**
   * Transactional mode: claims the key inside a database transaction, runs `work` with that
   * transaction's handle (a TypeORM `EntityManager` for the TypeORM store), and stores the response
   * in the same transaction. A crash rolls everything back. Stores without transactions omit it.
   */
  runInTransaction?<T>(
    claim: IdempotencyClaim,
    work: (transaction: unknown, lease: IdempotencyLease) => Promise<TransactionalOutcome<T>>,
  ): Promise<TransactionalResult<T>>;
  /**
   * Deletes expired records in batches of `batchSize`; returns how many were deleted. `exclusive`:
   * skip when another instance is purging the same database (PostgreSQL advisory lock); stores
   * without a shared database ignore it.
   */
  purgeExpired(options?: { batchSize?: number; exclusive?: boolean }): Promise<number>;
  /** One cheap round trip, for health checks. Throws when the store is unreachable. */
  ping(): Promise<void>;
  /**
   * Receives the event stream and warning log of an application that uses the store (called once
   * per idempotency core). Stores with something to report (the in-memory store's evictions)
   * implement it; others omit it.
   */
  observe?(observer: IdempotencyStoreObserver): void;
}

/**
 * Injection token of the {@link IdempotencyStore} in use (`@Inject(IdempotencyStore)`).
 * @publicApi
 */
export const IdempotencyStore = Symbol('IdempotencyStore');
