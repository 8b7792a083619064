/**
 * The newest `capacity` items, each numbered in order (`seq` from 1): pushing past the capacity
 * drops the oldest. Memory stays `capacity` items whatever the traffic.
 * @internal
 */
export class RingBuffer<T> {
  private readonly items: Array<T | undefined>;
  private next = 0;
  private count = 0;
  private lastSeq = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  /** The sequence number the next item gets. */
  get nextSeq(): number {
    return this.lastSeq + 1;
  }

  /** Items held now. */
  get size(): number {
    return this.count;
  }

  /** Adds `item` (built with its sequence number), dropping the oldest when full; returns it. */
  push(build: (seq: number) => T): T {
    const item = build(++this.lastSeq);
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    return item;
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const result: T[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let index = 0; index < this.count; index++) result.push(this.items[(start + index) % this.capacity]!);
    return result;
  }
}
