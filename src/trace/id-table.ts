// The live IDs of a trace, keyed by their bytes: an open-addressing hash table (linear probing, deletion by
// backward shift) from an ID's bytes to its dense slot. Looking an ID up builds no string; each slot keeps
// its ID's string, made once when the ID is created.

const EMPTY = 0;

export class IdTable {
  /** Buckets: slot + 1, or EMPTY. Length a power of two, at most half full. */
  private buckets = new Int32Array(1024);
  private mask = 1023;
  /** slot -> its ID's hash, string, and (for non-ASCII IDs) bytes. */
  private slotHash = new Int32Array(1024);
  private slotKey: string[] = [];
  private slotBytes = new Map<number, Buffer>();
  /** slot -> the line that created it. */
  createdAt = new Int32Array(1024);
  private freeSlots: number[] = [];
  private slotCount = 0;
  /** How many IDs are live. */
  size = 0;

  /** Slots handed out so far: every slot is below this. */
  get slotLimit(): number {
    return this.slotCount;
  }

  /** The slot of the ID at buf[start, end) whose FNV-1a hash is `hash`, or -1. */
  find(buf: Uint8Array, start: number, end: number, hash: number): number {
    const buckets = this.buckets;
    const mask = this.mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = buckets[i];
      if (entry === EMPTY) return -1;
      const slot = entry - 1;
      if (this.slotHash[slot] === hash && this.keyEquals(slot, buf, start, end)) return slot;
    }
  }

  /** The string of a live slot's ID. */
  key(slot: number): string {
    return this.slotKey[slot];
  }

  /** Adds an ID that is not live; returns its new slot. `ascii` tells whether its bytes are all below 0x80. */
  insert(key: string, buf: Uint8Array, start: number, end: number, hash: number, ascii: boolean, line: number): number {
    let slot: number;
    if (this.freeSlots.length > 0) slot = this.freeSlots.pop()!;
    else {
      slot = this.slotCount++;
      if (slot === this.slotHash.length) {
        this.slotHash = grow(this.slotHash);
        this.createdAt = grow(this.createdAt);
      }
    }
    this.slotHash[slot] = hash;
    this.slotKey[slot] = key;
    if (!ascii) this.slotBytes.set(slot, Buffer.from(buf.subarray(start, end)));
    this.createdAt[slot] = line;
    if (2 * (this.size + 1) > this.buckets.length) this.rehash(this.buckets.length * 2);
    const buckets = this.buckets;
    const mask = this.mask;
    let i = hash & mask;
    while (buckets[i] !== EMPTY) i = (i + 1) & mask;
    buckets[i] = slot + 1;
    this.size++;
    return slot;
  }

  /** Ends a live slot's ID; the slot will be reused. */
  remove(slot: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    let i = this.slotHash[slot] & mask;
    while (buckets[i] !== slot + 1) i = (i + 1) & mask;
    // Backward shift: move later entries of the run into the hole when their home allows it.
    let hole = i;
    for (let j = (i + 1) & mask; buckets[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.slotHash[buckets[j] - 1] & mask;
      // The entry at j may fill the hole when its home is not in (hole, j] (cyclically).
      if ((j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j)) {
        buckets[hole] = buckets[j];
        hole = j;
      }
    }
    buckets[hole] = EMPTY;
    if (this.slotBytes.size > 0) this.slotBytes.delete(slot);
    this.slotKey[slot] = '';
    this.freeSlots.push(slot);
    this.size--;
  }

  private keyEquals(slot: number, buf: Uint8Array, start: number, end: number): boolean {
    const bytes = this.slotBytes.size > 0 ? this.slotBytes.get(slot) : undefined;
    if (bytes) {
      if (bytes.length !== end - start) return false;
      for (let i = 0; i < bytes.length; i++) if (bytes[i] !== buf[start + i]) return false;
      return true;
    }
    const key = this.slotKey[slot];
    if (key.length !== end - start) return false;
    for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== buf[start + i]) return false;
    return true;
  }

  private rehash(capacity: number): void {
    const old = this.buckets;
    this.buckets = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < old.length; i++) {
      const entry = old[i];
      if (entry === EMPTY) continue;
      let j = this.slotHash[entry - 1] & this.mask;
      while (this.buckets[j] !== EMPTY) j = (j + 1) & this.mask;
      this.buckets[j] = entry;
    }
  }
}

function grow(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2);
  bigger.set(array);
  return bigger;
}
