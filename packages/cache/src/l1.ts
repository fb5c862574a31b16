import { LRUCache } from "lru-cache";

export interface L1Entry<T> {
  value: T;
  version: number;
  storedAt: number;
  /** Epoch ms at which the entry must stop being served (validUntil). */
  hardExpiry: number | null;
}

/**
 * The in-process tier: a bounded LRU whose entries live for seconds at most and are
 * evicted by Redis invalidation messages (see l1-invalidations.ts).
 *
 * The tracking race: a read of Redis can return an old value while the message that
 * invalidates it is already on its way; storing the old value after the message was
 * applied would keep it until the L1 TTL. So each store carries the invalidation
 * sequence number observed when its Redis read began, and a store is dropped if the
 * key was invalidated (or the whole L1 flushed) since then.
 */
export class L1Store<T> {
  private readonly entries: LRUCache<string, L1Entry<T>>;
  private readonly invalidatedAt: LRUCache<string, number>;
  private seq = 0;
  /** Reads that began before this sequence number are never stored (flush or lost history). */
  private floor = 0;
  private enabled = false;

  constructor(opts: { maxEntries: number }) {
    this.entries = new LRUCache({ max: opts.maxEntries, ttlAutopurge: false });
    this.invalidatedAt = new LRUCache({
      max: Math.max(1024, opts.maxEntries),
      // Forgetting when a key was invalidated is only safe if no older read may store.
      dispose: (seq, _key, reason) => {
        if (reason === "evict") this.floor = Math.max(this.floor, seq);
      },
    });
  }

  /**
   * Only a coherent L1 (invalidation channel up) is used. Every switch flushes it and
   * raises the floor: a read that began while the channel was down may have missed
   * invalidations, so it must not store after the channel comes back.
   */
  setEnabled(enabled: boolean): void {
    this.clear();
    this.enabled = enabled;
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  /** Call before reading Redis; pass the token to store(). */
  readToken(): number {
    return this.seq;
  }

  /**
   * Whether `key` was invalidated (or the whole L1 flushed) since a read that took `token` began:
   * such a read may predate a write, so a later request must not join it (docs/architecture.md#l1-coherence).
   */
  invalidatedSince(key: string, token: number): boolean {
    if (token < this.floor) return true;
    const invalidated = this.invalidatedAt.get(key);
    return invalidated !== undefined && invalidated > token;
  }

  get(key: string, now: number): L1Entry<T> | undefined {
    if (!this.enabled) return undefined;
    const e = this.entries.get(key);
    if (e && e.hardExpiry !== null && e.hardExpiry <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  store(key: string, entry: L1Entry<T>, ttlMs: number, token: number): boolean {
    if (!this.enabled || ttlMs <= 0 || token < this.floor) return false;
    const invalidated = this.invalidatedAt.get(key);
    if (invalidated !== undefined && invalidated > token) return false;
    this.entries.set(key, entry, { ttl: ttlMs });
    return true;
  }

  invalidate(key: string): void {
    this.seq++;
    this.invalidatedAt.set(key, this.seq);
    this.entries.delete(key);
  }

  clear(): void {
    this.seq++;
    this.floor = this.seq;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
