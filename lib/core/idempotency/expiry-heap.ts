/** What the heap reads and writes of an entry. */
export interface HeapEntry {
  readonly expiresAt: number;
  /** Its index in the heap; -1 while it is not there. */
  slot: number;
}

/**
 * A binary min-heap of the in-memory store's completed records by `expiresAt`, each record
 * knowing its slot so it can be removed from the middle in O(log n). Records complete in retention
 * order when every route has the same `ttl`, so an insert usually stops at once.
 * @internal
 */
export class ExpiryHeap<T extends HeapEntry> {
  private readonly items: T[] = [];

  peek(): T | undefined {
    return this.items[0];
  }

  push(record: T): void {
    record.slot = this.items.length;
    this.items.push(record);
    this.up(record.slot);
  }

  remove(record: T): void {
    const { items } = this;
    const slot = record.slot;
    record.slot = -1;
    const last = items.pop()!;
    if (last === record) return;
    items[slot] = last;
    last.slot = slot;
    if (slot > 0 && items[(slot - 1) >> 1]!.expiresAt > last.expiresAt) this.up(slot);
    else this.down(slot);
  }

  clear(): void {
    for (const record of this.items) record.slot = -1;
    this.items.length = 0;
  }

  private up(slot: number): void {
    const { items } = this;
    const record = items[slot]!;
    while (slot > 0) {
      const parentSlot = (slot - 1) >> 1;
      const parent = items[parentSlot]!;
      if (parent.expiresAt <= record.expiresAt) break;
      items[slot] = parent;
      parent.slot = slot;
      slot = parentSlot;
    }
    items[slot] = record;
    record.slot = slot;
  }

  private down(slot: number): void {
    const { items } = this;
    const record = items[slot]!;
    const half = items.length >> 1;
    while (slot < half) {
      let childSlot = 2 * slot + 1;
      const right = childSlot + 1;
      if (right < items.length && items[right]!.expiresAt < items[childSlot]!.expiresAt) childSlot = right;
      const child = items[childSlot]!;
      if (record.expiresAt <= child.expiresAt) break;
      items[slot] = child;
      child.slot = slot;
      slot = childSlot;
    }
    items[slot] = record;
    record.slot = slot;
  }
}
