import { randomUUID } from "node:crypto";
import { type BulkheadPolicy, bulkhead } from "cockatiel";
import type { CacheEvent, CacheRead, SuppressedOperation, VersionedCache, VersionedCacheOptions } from "./cache.ts";
import { type CacheEntry, createEntry, decodeEntry, encodeEntry, isExpired, l1TtlMs, shouldRefreshEarly, storedTtlMs } from "./entry.ts";
import { type EntityKeys, entityKeys } from "./keys.ts";
import { L1Store } from "./l1.ts";
import { RedisTier } from "./redis-tier.ts";

type Defaults = "jitter" | "waitForFillMs" | "maxFillAgeMs" | "now" | "earlyRefreshBeta" | "staleGraceMs";
type Load<T> = () => Promise<T | null>;
/** A lease we hold: its token, and when Redis granted it (Redis's clock, ms). */
type Lease = { token: string; at: number };

/**
 * THE consistency protocol (docs/architecture.md#cache-protocol), the read path only: L1 (bounded,
 * in-process, kept coherent by Redis invalidation messages) -> Redis (leases: one DB read per key per
 * miss across the fleet; fences: no stale fill after an invalidation; XFetch early refresh;
 * stale-while-revalidate only after a TTL expiry, which doubles as stale-if-error) -> Postgres.
 * Concurrent misses in one process share one promise. When Redis fails, reads go to Postgres under
 * a bulkhead (`BYPASS`). The stored format is entry.ts's, the Redis calls are redis-tier.ts's.
 */
export class ProtocolCache<T> implements VersionedCache<T> {
  private readonly remote: RedisTier;
  private readonly inflight = new Map<string, Promise<CacheRead<T>>>();
  private readonly refreshing = new Set<string>();
  private readonly opts: Required<Pick<VersionedCacheOptions<T>, Defaults>> & VersionedCacheOptions<T>;
  private readonly l1: L1Store<T> | null;
  private readonly l1TtlMs: number;
  private readonly fallback: BulkheadPolicy;

  constructor(options: VersionedCacheOptions<T>) {
    this.opts = {
      jitter: 0.05,
      waitForFillMs: 300,
      maxFillAgeMs: 10_000,
      now: Date.now,
      earlyRefreshBeta: 1,
      staleGraceMs: 60_000,
      ...options,
    };
    this.remote = new RedisTier(options.redis, options.breaker);
    this.fallback = bulkhead(options.fallbackReads?.limit ?? 16, options.fallbackReads?.queue ?? 256);
    this.l1TtlMs = options.l1?.ttlMs ?? 5_000;
    this.l1 = options.l1 ? new L1Store<T>({ maxEntries: options.l1.maxEntries ?? 10_000 }) : null;
    if (this.l1) options.l1?.invalidations.attach(this.l1);
  }

  keys(id: string | number): EntityKeys {
    return entityKeys(this.opts.schemaVersion, this.opts.entity, id);
  }

  get redisCircuit(): string {
    return this.remote.circuit;
  }

  /** Read through the tiers; concurrent calls for one id in this process share one promise. */
  get(id: string | number, load: Load<T>): Promise<CacheRead<T>> {
    const k = this.keys(id);
    if (this.l1?.isEnabled) {
      const now = this.opts.now();
      const e = this.l1.get(k.value, now);
      if (e) {
        this.emit("l1_hit");
        return Promise.resolve({ value: e.value, source: "HIT-L1", ageMs: now - e.storedAt });
      }
      this.emit("l1_miss");
    }
    const pending = this.inflight.get(k.value);
    if (pending) {
      this.emit("coalesced");
      return pending;
    }
    const p = this.read(k, load).finally(() => this.inflight.delete(k.value));
    this.inflight.set(k.value, p);
    return p;
  }

  private async read(k: EntityKeys, load: Load<T>): Promise<CacheRead<T>> {
    const token = randomUUID();
    const l1Token = this.l1?.readToken() ?? 0;
    let reply: Awaited<ReturnType<RedisTier["getOrLease"]>>;
    try {
      reply = await this.remote.getOrLease(k, token, this.opts.leaseMs);
    } catch {
      return this.bypass(load);
    }
    if (reply.kind === "leased") return this.fillAsLeaseHolder(k, { token, at: reply.leasedAtMs }, l1Token, load);
    if (reply.kind === "wait") return this.waitForFill(k, l1Token, load);

    const now = this.opts.now();
    const entry = decodeEntry(reply.payload, this.opts, now);
    if (!entry) {
      // Unreadable payload (older schema or corruption): drop it and read fresh.
      this.emit("invalid_payload");
      await this.remote.delete(k.value).catch((err) => this.suppressed("invalid_payload_delete", err));
      return { value: await this.fallbackLoad(load), source: "MISS", ageMs: 0 };
    }
    if (isExpired(entry, now)) {
      // TTL over but the key is still within its grace period: nothing says the row
      // changed (an invalidation would have deleted the key), so serve it while one
      // caller refreshes (if Postgres is down, until the grace ends: stale-if-error).
      this.emit("stale_while_revalidate");
      this.refreshInBackground(k, load);
      return { value: entry.value, source: "STALE", ageMs: now - entry.storedAt };
    }
    if (shouldRefreshEarly(entry, now, this.opts.earlyRefreshBeta)) {
      this.emit("early_refresh");
      this.refreshInBackground(k, load);
    }
    this.emit("hit");
    this.storeL1(k, entry, l1Token);
    return { value: entry.value, source: "HIT", ageMs: now - entry.storedAt };
  }

  private async fillAsLeaseHolder(k: EntityKeys, lease: Lease, l1Token: number, load: Load<T>): Promise<CacheRead<T>> {
    this.emit("miss");
    let filled: Awaited<ReturnType<typeof this.loadAndFill>>;
    try {
      filled = await this.loadAndFill(k, lease, load, "fill");
    } catch (err) {
      // Let the waiters go to the DB themselves rather than wait out our lease.
      await this.releaseLease(k, lease.token);
      throw err;
    }
    if (!filled) return { value: null, source: "MISS", ageMs: 0 };
    if (filled.stored) this.storeL1(k, filled.entry, l1Token);
    return { value: filled.entry.value, source: "MISS", ageMs: this.opts.now() - filled.entry.storedAt };
  }

  /**
   * Reads the DB as lease holder and fills Redis unless fenced. Returns what was read
   * (null: no row) and whether it was stored: a refused fill means our read raced a
   * write, so the value must not go into L1 either. A failed fill is reported as `failure`.
   * Redis refuses the fill once it is older than maxFillAgeMs on its own clock (counted from the
   * lease), however long it was held up on the way: the fence it relies on has a TTL.
   */
  private async loadAndFill(
    k: EntityKeys,
    { token, at }: Lease,
    load: Load<T>,
    failure: SuppressedOperation,
  ): Promise<{ entry: CacheEntry<T>; stored: boolean } | null> {
    const startedAt = this.opts.now();
    const value = await load();
    const now = this.opts.now();
    if (value === null) {
      await this.releaseLease(k, token);
      return null;
    }
    const { entry, ttlMs } = createEntry(this.opts, value, { startedAt, now, baseTtlMs: this.opts.ttlMs, jitter: this.opts.jitter });
    if (ttlMs === 0 || now - startedAt > this.opts.maxFillAgeMs) {
      await this.releaseLease(k, token);
      return { entry, stored: false };
    }
    try {
      const payload = encodeEntry(entry);
      const ttl = storedTtlMs(this.opts, entry, ttlMs, this.opts.staleGraceMs);
      const stored = await this.remote.fill(k, token, entry.version, payload, ttl, at + this.opts.maxFillAgeMs);
      this.emit(stored ? "fill" : "fill_refused");
      return { entry, stored };
    } catch (err) {
      // The value we read is still the DB's answer; only the fill failed.
      this.suppressed(failure, err);
      return { entry, stored: false };
    }
  }

  private async waitForFill(k: EntityKeys, l1Token: number, load: Load<T>): Promise<CacheRead<T>> {
    this.emit("lease_wait");
    const deadline = this.opts.now() + this.opts.waitForFillMs;
    let delay = 2;
    while (this.opts.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 25);
      let raw: string | null;
      try {
        raw = await this.remote.get(k.value);
      } catch {
        return this.bypass(load);
      }
      const now = this.opts.now();
      const entry = raw === null ? null : decodeEntry(raw, this.opts, now);
      if (entry && !isExpired(entry, now)) {
        this.emit("hit");
        this.storeL1(k, entry, l1Token);
        return { value: entry.value, source: "HIT", ageMs: this.opts.now() - entry.storedAt };
      }
    }
    this.emit("lease_wait_timeout");
    return { value: await this.fallbackLoad(load), source: "MISS", ageMs: 0 };
  }

  private async bypass(load: Load<T>): Promise<CacheRead<T>> {
    this.emit("bypass");
    return { value: await this.fallbackLoad(load), source: "BYPASS", ageMs: 0 };
  }

  /** DB reads outside the lease protocol are bounded: at most `limit` at once, then a queue, then rejection. */
  private fallbackLoad(load: Load<T>): Promise<T | null> {
    return this.fallback.execute(load);
  }

  private refreshInBackground(k: EntityKeys, load: Load<T>): void {
    if (this.refreshing.has(k.value)) return;
    this.refreshing.add(k.value);
    const token = randomUUID();
    void (async () => {
      const at = await this.remote.tryLease(k, token, this.opts.leaseMs);
      if (at === null) return;
      // A failed refresh keeps its lease until it expires (leaseMs): a sick Postgres then
      // gets one refresh attempt per key per lease period, not one per stale read.
      const filled = await this.loadAndFill(k, { token, at }, load, "background_refresh");
      // The row is gone: stop serving the old value (a delete event will fence it too).
      if (!filled) await this.remote.delete(k.value);
    })()
      .catch((err) => this.suppressed("background_refresh", err))
      .finally(() => this.refreshing.delete(k.value));
  }

  private async releaseLease(k: EntityKeys, token: string): Promise<void> {
    await this.remote.releaseLease(k, token).catch((err) => this.suppressed("lease_release", err));
  }

  private storeL1(k: EntityKeys, entry: CacheEntry<T>, l1Token: number): void {
    if (!this.l1) return;
    const ttl = l1TtlMs(this.opts, entry, this.l1TtlMs, this.opts.now());
    const hardExpiry = this.opts.validUntilMs(entry.value);
    this.l1.store(k.value, { value: entry.value, version: entry.version, storedAt: entry.storedAt, hardExpiry }, ttl, l1Token);
  }

  private suppressed(operation: SuppressedOperation, err: unknown): void {
    this.opts.onSuppressedError?.(operation, err);
  }

  private emit(event: CacheEvent): void {
    this.opts.onEvent?.(event);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
