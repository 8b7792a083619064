import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import { ResilienceConfigError } from '../errors.js';
import type { ResilienceEvent, ResilienceEventName } from '../events.js';
import type {
  IdempotencyClaim,
  IdempotencyClaimResult,
  IdempotencyLease,
  IdempotencyStore,
  IdempotencyStoreObserver,
  StoredResponse,
} from './idempotency-store.interface.js';
import { recordIdOf } from './record-id.js';
import { responseWithoutBody } from './response-encoding.js';
import { IdempotencyStoreFullError } from './store-failure.js';
import { ExpiryHeap } from './expiry-heap.js';

/**
 * Options of {@link InMemoryIdempotencyStore}.
 * @publicApi
 */
export interface InMemoryIdempotencyStoreOptions {
  /** Source of time for leases and retention (swap in `FakeClock` in tests). @default systemClock */
  clock?: Clock;
  /**
   * Most records held, in progress and completed. A new key that finds the store full evicts the
   * completed record whose retention ends first (a retry of an evicted key runs its handler
   * again). Records in progress are never evicted: a new key that would need that is answered
   * 503 `idempotency_store_full` with `Retry-After`, without running the handler.
   * @default 50_000
   */
  maxRecords?: number;
  /**
   * Most bytes of stored data: keys, scopes, fingerprints, lease tokens and the bodies and headers
   * of completed responses, one byte per character (as V8 keeps ASCII and Latin-1 text; other
   * text may take two). Evicts like `maxRecords`. Each record also costs a fixed amount of
   * bookkeeping on top (about 0.6 KB, docs/operations.md "Memory bounds"). A response that does
   * not fit even after evicting every completed record is kept without its body (its replays
   * answer `idempotency_response_not_kept`).
   * @default 67_108_864 (64 MiB)
   */
  maxBytes?: number;
}

/** Default of {@link InMemoryIdempotencyStoreOptions.maxRecords}. @publicApi */
export const DEFAULT_IN_MEMORY_MAX_RECORDS = 50_000;
/** Default of {@link InMemoryIdempotencyStoreOptions.maxBytes} (64 MiB). @publicApi */
export const DEFAULT_IN_MEMORY_MAX_BYTES = 64 * 1024 * 1024;
/** Smallest `maxBytes` accepted: room for a few records of the largest key. */
const MIN_MAX_BYTES = 64 * 1024;

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
  /** What it adds to the store's byte count. */
  bytes: number;
  /** Its index in the eviction heap; -1 while it is not there (in progress, or gone). */
  slot: number;
}

/** Expired records are swept on a claim at most this often (eviction takes expired records first anyway). */
const SWEEP_EVERY_MS = 60_000;

/** Why a record was evicted: the `outcome` of `idempotency_evicted`. */
type EvictionReason = 'max_records' | 'max_bytes';

/**
 * Idempotency records in this process's memory: the default store, for tests and single-instance
 * apps. Records do not survive a restart and are not shared between instances; use
 * `TypeOrmIdempotencyStore` (`nest-resilience/typeorm`) or `RedisIdempotencyStore`
 * (`nest-resilience/redis`) when several instances serve one API or records must outlive the
 * process. Follows the same state machine as the SQL store; every operation is synchronous
 * inside, so it is atomic. Has no transactions, hence no `runInTransaction`.
 *
 * Bounded: at most `maxRecords` records and `maxBytes` of stored data (50,000 and 64 MiB by
 * default). When a new key or a response needs room, completed records are evicted, the one whose
 * retention ends first first (an `idempotency_evicted` event each; a retry of an evicted key runs
 * again); records in progress never are, so a new key that would need that is refused (503
 * `idempotency_store_full`). Expired records are the first evicted, and are swept every minute.
 * Costs per request: a heap insert when a record completes (O(log n), O(1) when retentions are
 * equal) and O(log n) per record removed.
 * @example
 * ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore({ maxRecords: 10_000 }) } });
 * @publicApi
 */
export class InMemoryIdempotencyStore implements IdempotencyStore {
  /** Most records held. */
  readonly maxRecords: number;
  /** Most bytes of stored data held. */
  readonly maxBytes: number;
  private readonly clock: Clock;
  /** Every record, by namespace, scope and key: a replay finds its record without hashing. */
  private readonly records = new Map<string, MemoryRecord>();
  /** The records under a lease, by the lease's owner token (unique per claim). */
  private readonly leased = new Map<string, MemoryRecord>();
  /** Completed records, the one whose retention ends first on top: what is evicted next. */
  private readonly completed = new ExpiryHeap<MemoryRecord>();
  private storedBytes = 0;
  private lastSweep: number;
  private readonly observers: IdempotencyStoreObserver[] = [];
  /** What was already warned about: an eviction reason, or `not_kept`. */
  private readonly warned = new Set<EvictionReason | 'not_kept'>();
  /**
   * Owner tokens have a UUID's shape, as every store's: the first 24 characters of a random UUID
   * drawn once per store, then the claim count in 12 hex digits. Unique per claim, and no lease of
   * another store matches; no random UUID per claim (these tokens never leave the process).
   */
  private readonly ownerPrefix = randomUUID().slice(0, 24);
  private claims = 0;

  constructor(options: InMemoryIdempotencyStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.maxRecords = wholeNumber('maxRecords', options.maxRecords ?? DEFAULT_IN_MEMORY_MAX_RECORDS, 1, DEFAULT_IN_MEMORY_MAX_RECORDS);
    this.maxBytes = wholeNumber('maxBytes', options.maxBytes ?? DEFAULT_IN_MEMORY_MAX_BYTES, MIN_MAX_BYTES, DEFAULT_IN_MEMORY_MAX_BYTES);
    this.lastSweep = this.clock.now();
  }

  /** Number of records held (in progress and completed); for tests and metrics. */
  get size(): number {
    return this.records.size;
  }

  /** Bytes of stored data counted against `maxBytes`; for tests and metrics. */
  get bytes(): number {
    return this.storedBytes;
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
    this.leased.delete(lease.owner);
    let stored = response;
    let bytes = recordBytes(record, null) + responseBytes(response);
    if (!this.roomFor(bytes - record.bytes, false)) {
      // even with every completed record gone the body does not fit: keep the outcome, not the body
      const bodyBytes = response.body === null ? 0 : response.body.length;
      stored = responseWithoutBody(response, bodyBytes);
      bytes = recordBytes(record, null) + responseBytes(stored);
      const first = !this.warned.has('not_kept');
      if (first) this.warned.add('not_kept');
      this.report(first ? `The in-memory idempotency store could not keep a response body of ${bodyBytes} bytes within maxBytes (${this.maxBytes}); it kept the outcome without the body, so replays answer idempotency_response_not_kept. Raise maxBytes or lower maxResponseBytes.` : undefined, {
        event: 'idempotency_response_not_kept',
        policy: 'in-memory idempotency store',
        outcome: 'max_bytes',
        detail: `the response body (${bodyBytes} bytes) did not fit maxBytes (${this.maxBytes}) beside the requests in progress`,
      });
    }
    record.status = 'completed';
    record.owner = null;
    record.lockedUntil = 0;
    record.expiresAt = this.clock.now() + ttlMs;
    record.response = { ...stored, headers: { ...stored.headers } };
    this.storedBytes += bytes - record.bytes;
    record.bytes = bytes;
    this.completed.push(record);
    return true;
  }

  async release(lease: IdempotencyLease): Promise<boolean> {
    const record = this.ownedRecord(lease);
    if (!record) return false;
    this.remove(record);
    return true;
  }

  async purgeExpired(): Promise<number> {
    return this.sweep(this.clock.now());
  }

  async ping(): Promise<void> {}

  /** Reports evictions (`idempotency_evicted`) and the first one of each kind as a warning. */
  observe(observer: IdempotencyStoreObserver): void {
    if (this.observers.some((known) => known.events === observer.events && known.warn === observer.warn)) return;
    this.observers.push(observer);
  }

  /**
   * Drops every record (the process is going away; nothing here is durable). Nest calls it by name
   * when the store is a provider: core implements no Nest interface.
   */
  onApplicationShutdown(): void {
    this.records.clear();
    this.leased.clear();
    this.completed.clear();
    this.storedBytes = 0;
  }

  private acquire(lookup: string, previous: MemoryRecord | undefined, claim: IdempotencyClaim, now: number, fence: number, takeover: boolean): IdempotencyClaimResult {
    const owner = this.ownerPrefix + (++this.claims).toString(16).padStart(12, '0');
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
      bytes: 0,
      slot: -1,
    };
    record.bytes = recordBytes(record, owner);
    if (previous?.status === 'completed') {
      // retention ended: the old record goes first (it would be the first evicted anyway)
      this.remove(previous);
      previous = undefined;
    }
    // a takeover replaces a record in progress, which is never evicted: it only needs the difference
    if (!this.roomFor(record.bytes - (previous?.bytes ?? 0), previous === undefined)) {
      throw new IdempotencyStoreFullError(
        this.records.size >= this.maxRecords
          ? `all ${this.records.size} records (maxRecords) are requests in progress`
          : `requests in progress hold ${this.storedBytes} bytes of maxBytes (${this.maxBytes})`,
      );
    }
    if (previous) {
      // a takeover ends the expired lease: its owner can no longer complete, renew or release
      if (previous.owner) this.leased.delete(previous.owner);
      this.storedBytes -= previous.bytes;
    }
    this.records.set(lookup, record);
    this.leased.set(owner, record);
    this.storedBytes += record.bytes;
    return { state: 'acquired', lease: new MemoryLease(record, owner, fence), takeover };
  }

  /**
   * Evicts completed records (retention ending first, first) until `bytes` more fit and, for a new
   * record, one more record fits; false when only records in progress are left to evict.
   */
  private roomFor(bytes: number, newRecord: boolean): boolean {
    for (;;) {
      const reason: EvictionReason | undefined =
        newRecord && this.records.size >= this.maxRecords ? 'max_records' : this.storedBytes + bytes > this.maxBytes ? 'max_bytes' : undefined;
      if (reason === undefined) return true;
      const victim = this.completed.peek();
      if (victim === undefined) return false;
      this.remove(victim);
      this.reportEviction(victim, reason);
    }
  }

  /** Forgets `record` (from every structure), if it is still the one held for its key. */
  private remove(record: MemoryRecord): void {
    if (this.records.get(record.lookup) === record) this.records.delete(record.lookup);
    if (record.owner !== null && this.leased.get(record.owner) === record) this.leased.delete(record.owner);
    if (record.slot >= 0) this.completed.remove(record);
    this.storedBytes -= record.bytes;
    record.bytes = 0;
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
    for (let top = this.completed.peek(); top !== undefined && top.expiresAt <= now; top = this.completed.peek()) {
      this.remove(top);
      deleted++;
    }
    // claims whose lease and retention both ended (their handler never settled)
    for (const record of this.leased.values()) {
      if (record.expiresAt <= now && record.lockedUntil <= now) {
        this.remove(record);
        deleted++;
      }
    }
    return deleted;
  }

  private reportEviction(record: MemoryRecord, reason: EvictionReason): void {
    const first = !this.warned.has(reason);
    // nothing is built per eviction unless someone listens (a full store evicts on every new key)
    if (!first && !this.wanted('idempotency_evicted')) return;
    if (first) this.warned.add(reason);
    const limit = reason === 'max_records' ? `maxRecords (${this.maxRecords})` : `maxBytes (${this.maxBytes})`;
    this.report(
      first
        ? `The in-memory idempotency store reached ${limit}: it now evicts completed records, the one whose retention ends first first, and a retry of an evicted key runs its handler again. Raise maxRecords / maxBytes, shorten ttl, or use TypeOrmIdempotencyStore or RedisIdempotencyStore (docs/idempotency.md).`
        : undefined,
      {
        event: 'idempotency_evicted',
        policy: 'in-memory idempotency store',
        outcome: reason,
        detail: `a completed record was evicted ${Math.max(0, record.expiresAt - this.clock.now())} ms before its retention ended (${limit} reached)`,
      },
    );
  }

  /** Whether an observer consumes events named `name` now. */
  private wanted(name: ResilienceEventName): boolean {
    for (const { events } of this.observers) if (events !== undefined && events.wants?.(name) !== false) return true;
    return false;
  }

  /** `event` to every observer that wants it, and `warning` (when given) to every observer's log. */
  private report(warning: string | undefined, event: ResilienceEvent): void {
    for (const { events, warn } of this.observers) {
      if (warning !== undefined) warn?.(warning);
      if (events !== undefined && events.wants?.(event.event) !== false) events(event);
    }
  }
}

/** Bytes `record` counts for while `owner` (null once completed) and its response are held, response aside. */
function recordBytes(record: MemoryRecord, owner: string | null): number {
  return record.lookup.length + record.key.length + record.scope.length + record.fingerprint.length + (owner === null ? 0 : owner.length);
}

/** Bytes of a stored response: body and header names and values, one per character. */
function responseBytes(response: StoredResponse): number {
  let bytes = response.body === null ? 0 : response.body.length;
  for (const name in response.headers) bytes += name.length + response.headers[name]!.length;
  return bytes;
}

function wholeNumber(name: string, value: number, min: number, example: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ResilienceConfigError(
      `InMemoryIdempotencyStore: ${name} must be a whole number >= ${min} (got ${String(value)}); e.g. new InMemoryIdempotencyStore({ ${name}: ${example} }). For more records than one process should hold, use TypeOrmIdempotencyStore or RedisIdempotencyStore.`,
    );
  }
  return value;
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
