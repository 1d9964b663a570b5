/**
 * A Map whose entries expire and whose size is capped: the in-process store's memory is bounded by
 * what it holds. Expired entries are dropped when read and by `sweep`; beyond the cap, the entry
 * written longest ago goes first (a Map iterates in insertion order, and `set` re-inserts).
 */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > this.now()) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
    if (this.entries.size > this.maxEntries) this.sweep();
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }

  /** Moves the expiry of a live entry; a missing or expired one stays missing. */
  touch(key: string, ttlMs: number): void {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) entry.expiresAt = this.now() + ttlMs;
  }

  delete(key: string): V | undefined {
    const value = this.get(key);
    this.entries.delete(key);
    return value;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  *values(): IterableIterator<V> {
    for (const entry of this.entries.values()) yield entry.value;
  }
}
