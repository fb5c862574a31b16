import type { CacheRead, VersionedCache, VersionedCacheOptions } from "./cache.ts";
import { createEntry, decodeEntry, encodeEntry } from "./entry.ts";
import { type EntityKeys, entityKeys } from "./keys.ts";
import { RedisTier } from "./redis-tier.ts";

/**
 * Plain cache-aside (CACHE_MODE=plain): read Redis, on a miss read the DB and SET. No lease, no
 * fence, no coalescing, no L1: every concurrent miss reads the DB, and a read that raced a write
 * can store the old value. It exists only as the stampede benchmark's baseline (bench/cache-tiers.ts),
 * to show what the protocol prevents; never use it in production.
 */
export class PlainCache<T> implements VersionedCache<T> {
  private readonly opts: VersionedCacheOptions<T>;
  private readonly remote: RedisTier;
  private readonly now: () => number;

  constructor(options: VersionedCacheOptions<T>) {
    this.opts = options;
    this.remote = new RedisTier(options.redis, options.breaker);
    this.now = options.now ?? Date.now;
  }

  keys(id: string | number): EntityKeys {
    return entityKeys(this.opts.schemaVersion, this.opts.entity, id);
  }

  get redisCircuit(): string {
    return this.remote.circuit;
  }

  async get(id: string | number, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    const k = this.keys(id);
    const raw = await this.remote.get(k.value).catch((err) => {
      this.opts.onSuppressedError?.("plain_read", err);
      return null;
    });
    const cached = raw === null ? null : decodeEntry(raw, this.opts, this.now());
    if (cached) return { value: cached.value, source: "HIT", ageMs: this.now() - cached.storedAt };
    this.opts.onEvent?.("miss");
    const startedAt = this.now();
    const value = await load();
    if (value !== null) {
      const now = this.now();
      const { entry, ttlMs } = createEntry(this.opts, value, {
        startedAt,
        now,
        baseTtlMs: this.opts.ttlMs,
        jitter: this.opts.jitter ?? 0.05,
      });
      if (ttlMs > 0) {
        await this.remote.set(k.value, encodeEntry(entry), ttlMs).catch((err) => this.opts.onSuppressedError?.("plain_fill", err));
      }
    }
    return { value, source: "MISS", ageMs: 0 };
  }
}
