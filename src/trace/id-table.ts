// The live IDs of a trace, keyed by their bytes: an open-addressing hash table (linear probing, deletion by
// backward shift) from an ID's bytes to its dense slot. The bytes are kept in one arena; a slot's ID string
// is made only when asked for, so replaying without printing IDs builds no strings at all.

const EMPTY = 0;

export class IdTable {
  /** Buckets: slot + 1, or EMPTY. Length a power of two, at most half full. */
  private buckets = new Int32Array(1024);
  private mask = 1023;
  /** slot -> FNV-1a hash of its ID, and where its bytes are in the arena. */
  private slotHash = new Int32Array(1024);
  private keyStart = new Int32Array(1024);
  private keyLength = new Int32Array(1024);
  /** The ID bytes of live slots (and garbage of ended ones, until compaction). */
  private arena = new Uint8Array(1 << 16);
  private arenaUsed = 0;
  private arenaGarbage = 0;
  /** slot -> its ID string, once made; '' until then. */
  private keyText: string[] = [];
  /** slot -> the line that created it. */
  createdAt = new Int32Array(1024);
  private freeSlots = new Int32Array(1024);
  private freeCount = 0;
  private slotCount = 0;
  /** How many IDs are live. */
  size = 0;

  private static readonly utf8 = new TextDecoder('utf-8');

  /** Slots handed out so far: every slot is below this. */
  get slotLimit(): number {
    return this.slotCount;
  }

  /** The slot of the ID at buf[start, end) whose FNV-1a hash is `hash`, or -1. */
  find(buf: Uint8Array, start: number, end: number, hash: number): number {
    const buckets = this.buckets;
    const mask = this.mask;
    const length = end - start;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = buckets[i];
      if (entry === EMPTY) return -1;
      const slot = entry - 1;
      if (this.slotHash[slot] === hash && this.keyLength[slot] === length) {
        const arena = this.arena;
        let at = this.keyStart[slot];
        let same = true;
        for (let j = start; j < end; j++, at++) {
          if (arena[at] !== buf[j]) {
            same = false;
            break;
          }
        }
        if (same) return slot;
      }
    }
  }

  /** The ID string of a live slot, made on first use. */
  key(slot: number): string {
    const known = this.keyText[slot];
    if (known) return known;
    const start = this.keyStart[slot];
    const end = start + this.keyLength[slot];
    let text = '';
    let ascii = true;
    for (let i = start; i < end; i++) if (this.arena[i] >= 0x80) ascii = false;
    if (!ascii) text = IdTable.utf8.decode(this.arena.subarray(start, end));
    else for (let i = start; i < end; i++) text += String.fromCharCode(this.arena[i]);
    this.keyText[slot] = text;
    return text;
  }

  /** Adds the ID at buf[start, end), which is not live; returns its new slot. */
  insert(buf: Uint8Array, start: number, end: number, hash: number, line: number): number {
    let slot: number;
    if (this.freeCount > 0) slot = this.freeSlots[--this.freeCount];
    else {
      slot = this.slotCount++;
      if (slot === this.slotHash.length) {
        this.slotHash = grow(this.slotHash);
        this.keyStart = grow(this.keyStart);
        this.keyLength = grow(this.keyLength);
        this.createdAt = grow(this.createdAt);
        this.freeSlots = grow(this.freeSlots);
      }
    }
    const length = end - start;
    if (this.arenaUsed + length > this.arena.length) this.makeRoom(length);
    // A byte loop: IDs are short, and subarray() would make an object per insert.
    const arena = this.arena;
    for (let i = start, at = this.arenaUsed; i < end; i++, at++) arena[at] = buf[i];
    this.keyStart[slot] = this.arenaUsed;
    this.keyLength[slot] = length;
    this.arenaUsed += length;
    this.slotHash[slot] = hash;
    this.keyText[slot] = '';
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
    this.arenaGarbage += this.keyLength[slot];
    this.keyLength[slot] = -1;
    this.keyText[slot] = '';
    this.freeSlots[this.freeCount++] = slot;
    this.size--;
  }

  /** Compacts the arena when most of it is garbage (keeping it at least 4 times the live bytes), else grows it. */
  private makeRoom(length: number): void {
    const live = this.arenaUsed - this.arenaGarbage;
    if (this.arenaGarbage >= 3 * live) {
      const old = this.arena;
      const fresh = new Uint8Array(Math.max(old.length, 4 * (live + length)));
      let used = 0;
      for (let slot = 0; slot < this.slotCount; slot++) {
        const keyLength = this.keyLength[slot];
        if (keyLength < 0) continue;
        const from = this.keyStart[slot];
        this.keyStart[slot] = used;
        for (let i = 0; i < keyLength; i++) fresh[used++] = old[from + i];
      }
      this.arena = fresh;
      this.arenaUsed = used;
      this.arenaGarbage = 0;
    }
    if (this.arenaUsed + length > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + length));
      bigger.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = bigger;
    }
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
