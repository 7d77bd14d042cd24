/**
 * A bounded FIFO that drops its oldest entry when full, like the RAM buffer of a sensor that
 * cannot reach its gateway. Fixed capacity, allocated lazily in chunks of the array so 5,000
 * idle devices cost almost nothing.
 */
export class RingBuffer<T> {
  readonly capacity: number;
  private items: (T | undefined)[] = [];
  private head = 0;
  private count = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`edgelog invariant violated: ring capacity ${capacity} must be a positive integer`);
    this.capacity = capacity;
  }

  get length(): number {
    return this.count;
  }

  /** Appends `item`; returns the oldest entry it evicted to make room, if any. */
  push(item: T): T | undefined {
    let evicted: T | undefined;
    if (this.count === this.capacity) evicted = this.shift();
    if (this.items.length < this.capacity && this.head + this.count >= this.items.length) {
      // Still growing: the ring has not wrapped yet, so the next slot is the end of the array.
      this.items.push(item);
    } else {
      this.items[(this.head + this.count) % this.capacity] = item;
    }
    this.count++;
    return evicted;
  }

  /** Puts `item` back in front (it becomes the oldest); when full, evicts and returns the newest instead. */
  unshift(item: T): T | undefined {
    if (this.count === this.capacity) return item; // the buffer is full of older entries: the returned entry is older still
    if (this.items.length < this.capacity) {
      // Rebuild into a full-size array so the head can move backwards.
      const items = new Array<T | undefined>(this.capacity);
      for (let i = 0; i < this.count; i++) items[i + 1] = this.at(i);
      this.items = items;
      this.head = 1;
    }
    this.head = (this.head - 1 + this.capacity) % this.capacity;
    this.items[this.head] = item;
    this.count++;
    return undefined;
  }

  /** Removes and returns the oldest entry. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % Math.max(this.items.length, 1);
    this.count--;
    if (this.count === 0) {
      this.head = 0;
      if (this.items.length < this.capacity) this.items = [];
    }
    return item;
  }

  /** The entry at `index` from the oldest (0) without removing it. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.count) return undefined;
    return this.items[(this.head + index) % Math.max(this.items.length, 1)];
  }
}
