import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  StoredResponse,
} from './idempotency-store.interface.js';
import { recordIdOf } from './record-id.js';

/**
 * Options of {@link InMemoryIdempotencyStore}.
 * @publicApi
 */
export interface InMemoryIdempotencyStoreOptions {
  /** Source of time for leases and retention (swap in `FakeClock` in tests). @default systemClock */
  clock?: Clock;
}

interface MemoryRecord {
  /** Its key in `records`. */
  readonly lookup: string;
  readonly namespace: string;
  readonly scope: string;
  readonly key: string;
  /** Hashed from namespace, scope and key when a lease's `recordId` is first read. */
  recordId: string | undefined;
  fingerprint: string;
  status: 'in_progress' | 'completed';
  owner: string | null;
  fence: number;
  lockedUntil: number;
  expiresAt: number;
  response: StoredResponse | null;
}

/** Expired records are swept on a claim at most this often, so the map cannot grow without bound. */
const SWEEP_EVERY_MS = 60_000;

/**
 * Idempotency records in a `Map` of this process: the default store, for tests and single-instance
 * apps. Records do not survive a restart and are not shared between instances; use
 * `TypeOrmIdempotencyStore` from `nest-resilience/typeorm` when several instances serve one API.
 * Follows the same state machine as the SQL store; every operation is synchronous inside, so it is
 * atomic. Has no transactions, hence no `runInTransaction`.
 * @example
 * ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore() } });
 * @publicApi
 */
export class InMemoryIdempotencyStore implements IdempotencyStore {
  private readonly clock: Clock;
  /** Every record, by namespace, scope and key: a replay finds its record without hashing. */
  private readonly records = new Map<string, MemoryRecord>();
  /** The records under a lease, by the lease's owner token (unique per claim). */
  private readonly leased = new Map<string, MemoryRecord>();
  private lastSweep: number;

  constructor(options: InMemoryIdempotencyStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.lastSweep = this.clock.now();
  }

  /** Number of records held (live or expired but not yet swept); for tests and metrics. */
  get size(): number {
    return this.records.size;
  }

  async claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    const now = this.clock.now();
    this.sweepIfDue(now);
    const lookup = `${claim.namespace.length}:${claim.namespace}${claim.scope.length}:${claim.scope}${claim.key}`;
    const existing = this.records.get(lookup);
    if (!existing) return this.acquire(lookup, undefined, claim, now, 1, false);
    const sameRequest = existing.fingerprint === claim.fingerprint;
    if (existing.status === 'completed') {
      if (existing.expiresAt <= now) return this.acquire(lookup, existing, claim, now, existing.fence + 1, false);
      return { state: 'completed', sameRequest, response: existing.response! };
    }
    if (existing.lockedUntil <= now && sameRequest) return this.acquire(lookup, existing, claim, now, existing.fence + 1, true);
    return { state: 'in_progress', sameRequest, retryAfterMs: Math.max(0, existing.lockedUntil - now) };
  }

  async heartbeat(lease: IdempotencyLease, leaseMs: number): Promise<boolean> {
    const record = this.ownedRecord(lease);
    if (!record) return false;
    record.lockedUntil = this.clock.now() + leaseMs;
    return true;
  }

  async complete(lease: IdempotencyLease, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const record = this.ownedRecord(lease);
    if (!record) return false;
    record.status = 'completed';
    record.owner = null;
    record.lockedUntil = 0;
    record.expiresAt = this.clock.now() + ttlMs;
    record.response = { ...response, headers: { ...response.headers } };
    this.leased.delete(lease.owner);
    return true;
  }

  async release(lease: IdempotencyLease): Promise<boolean> {
    const record = this.ownedRecord(lease);
    if (!record) return false;
    this.records.delete(record.lookup);
    this.leased.delete(lease.owner);
    return true;
  }

  async purgeExpired(): Promise<number> {
    return this.sweep(this.clock.now());
  }

  async ping(): Promise<void> {}

  /**
   * Drops every record (the process is going away; nothing here is durable). Nest calls it by name
   * when the store is a provider: core implements no Nest interface.
   */
  onApplicationShutdown(): void {
    this.records.clear();
    this.leased.clear();
  }

  private acquire(lookup: string, previous: MemoryRecord | undefined, claim: IdempotencyClaim, now: number, fence: number, takeover: boolean): IdempotencyClaimResult {
    const owner = randomUUID();
    // a takeover ends the expired lease: its owner can no longer complete, renew or release
    if (previous?.owner) this.leased.delete(previous.owner);
    const record: MemoryRecord = {
      lookup,
      namespace: claim.namespace,
      scope: claim.scope,
      key: claim.key,
      recordId: previous?.recordId,
      fingerprint: claim.fingerprint,
      status: 'in_progress',
      owner,
      fence,
      lockedUntil: now + claim.leaseMs,
      expiresAt: now + claim.ttlMs,
      response: null,
    };
    this.records.set(lookup, record);
    this.leased.set(owner, record);
    return { state: 'acquired', lease: new MemoryLease(record, owner, fence), takeover };
  }

  /** The record if `lease` still owns it: the in-memory compare-and-set. */
  private ownedRecord(lease: IdempotencyLease): MemoryRecord | undefined {
    const record = this.leased.get(lease.owner);
    return record?.status === 'in_progress' && record.owner === lease.owner ? record : undefined;
  }

  private sweepIfDue(now: number): void {
    if (now - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(now);
  }

  private sweep(now: number): number {
    this.lastSweep = now;
    let deleted = 0;
    for (const [lookup, record] of this.records) {
      if (record.expiresAt <= now && (record.status === 'completed' || record.lockedUntil <= now)) {
        this.records.delete(lookup);
        if (record.owner !== null) this.leased.delete(record.owner);
        deleted++;
      }
    }
    return deleted;
  }
}

/** A lease of the in-memory store: its record id is hashed on first read (most requests never ask). */
class MemoryLease implements IdempotencyLease {
  readonly #record: MemoryRecord;

  constructor(
    record: MemoryRecord,
    readonly owner: string,
    readonly fence: number,
  ) {
    this.#record = record;
  }

  get recordId(): string {
    const record = this.#record;
    return (record.recordId ??= recordIdOf(record.namespace, record.scope, record.key));
  }

  toJSON(): IdempotencyLease {
    return { recordId: this.recordId, owner: this.owner, fence: this.fence };
  }
}
