import { createHash } from 'node:crypto';
import type { Deadline, DeadlineQueue } from '../deadline-queue.js';
import type { IdempotencyContext } from './idempotency-core.interface.js';
import type { IdempotencyLease } from './idempotency-store.interface.js';

/**
 * The public context of a claim. The record id is read from the lease only when asked for (the
 * in-memory store hashes it on demand); the lease itself stays private, as its owner token is the
 * claim's secret.
 * @internal
 */
export class LeaseContext implements IdempotencyContext {
  readonly fence: number;
  readonly #lease: IdempotencyLease;

  constructor(
    readonly key: string,
    readonly scope: string,
    lease: IdempotencyLease,
  ) {
    this.fence = lease.fence;
    this.#lease = lease;
  }

  get recordId(): string {
    return this.#lease.recordId;
  }

  downstreamKey(name: string): string {
    return createHash('sha256').update(`${this.recordId}:${name}`).digest('hex').slice(0, 48);
  }

  toJSON(): { key: string; scope: string; recordId: string; fence: number } {
    return { key: this.key, scope: this.scope, recordId: this.recordId, fence: this.fence };
  }
}

/**
 * The renewal state of one request's lease: a plain object, no closures (one per request). `owner`
 * is what the renewal callback needs to know about the request.
 * @internal
 */
export class LeaseHeartbeat<T> {
  /** Whether a renewal found the lease taken over (already reported). */
  lost = false;
  stopped = false;
  next: Deadline | undefined = undefined;

  constructor(
    private readonly queue: DeadlineQueue,
    readonly owner: T,
    readonly lease: IdempotencyLease,
    /** Time between renewals, in ms. */
    private readonly intervalMs: number,
  ) {}

  schedule(beat: (heartbeat: LeaseHeartbeat<T>) => void): void {
    this.next = this.queue.schedule(beat, this.intervalMs, this);
  }

  stop(): void {
    this.stopped = true;
    if (this.next !== undefined) this.queue.cancel(this.next);
    this.next = undefined;
  }
}
