import { randomUUID } from "node:crypto";
import { type BulkheadPolicy, bulkhead } from "cockatiel";
import { LRUCache } from "lru-cache";
import type { CacheEvent, CacheRead, SuppressedOperation, VersionedCache, VersionedCacheOptions } from "./cache.ts";
import {
  type CacheEntry,
  createAbsentEntry,
  createEntry,
  decodeStored,
  encodeEntry,
  isAbsent,
  isExpired,
  l1TtlMs,
  shouldRefreshEarly,
  storedTtlMs,
} from "./entry.ts";
import type { FreshnessGate } from "./freshness.ts";
import { type EntityKeys, entityKeys } from "./keys.ts";
import { L1Store } from "./l1.ts";
import { type Lease, RedisTier } from "./redis-tier.ts";

type Defaults = "jitter" | "waitForFillMs" | "maxFillAgeMs" | "now" | "earlyRefreshBeta" | "staleGraceMs" | "fenceTtlMs" | "negativeTtlMs";
type Load<T> = () => Promise<T | null>;
/** What the version probe found: the row's version, or ABSENT. */
const ABSENT = -1;
/** A read in flight, and the L1 invalidation sequence when it began (the join guard). */
type Inflight<T> = { promise: Promise<CacheRead<T>>; l1Token: number };
/** What a lease holder's read produced: the value (null: no row) and whether Redis took the fill. */
type Filled<T> = { entry: CacheEntry<T> | null; stored: boolean };

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
  private readonly inflight = new Map<string, Inflight<T>>();
  private readonly refreshing = new Set<string>();
  private readonly opts: Required<Pick<VersionedCacheOptions<T>, Defaults>> & VersionedCacheOptions<T>;
  private readonly l1: L1Store<T> | null;
  private readonly l1TtlMs: number;
  private readonly fallback: BulkheadPolicy;
  /** Bounded staleness: null = invalidations always trusted. */
  private readonly gate: FreshnessGate | null;
  private readonly probes = new Map<string, Promise<number>>();
  /** Read-throughs of keys the probe found stale, shared per key (a hot key must not stampede Postgres). */
  private readonly rereads = new Map<string, Promise<CacheRead<T>>>();
  /** Versions the probe confirmed, each kept for what is left of Δ after its probe began. */
  private readonly confirmed: LRUCache<string, number>;

  constructor(options: VersionedCacheOptions<T>) {
    this.opts = {
      jitter: 0.05,
      waitForFillMs: 300,
      maxFillAgeMs: 10_000,
      now: Date.now,
      earlyRefreshBeta: 1,
      staleGraceMs: 60_000,
      fenceTtlMs: 60_000,
      negativeTtlMs: 0,
      ...options,
    };
    this.gate = options.staleness?.gate ?? null;
    this.confirmed = new LRUCache({ max: options.staleness?.maxConfirmed ?? 10_000, ttlAutopurge: false });
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

  /**
   * Read through the tiers; concurrent calls for one id in this process share one promise, unless
   * the key was invalidated since that read began (it may predate the write: docs/architecture.md#l1-coherence).
   */
  get(id: string | number, load: Load<T>): Promise<CacheRead<T>> {
    const k = this.keys(id);
    if (this.l1?.isEnabled) {
      const now = this.opts.now();
      const e = this.l1.get(k.value, now);
      if (e) {
        const hit: CacheRead<T> = { value: e.value, source: "HIT-L1", ageMs: now - e.storedAt };
        // One field read: the monitor's timers keep `trusted` current, nothing is computed per hit.
        if (this.gate !== null && !this.gate.trusted) return this.revalidate(id, k, hit, load);
        this.emit("l1_hit");
        return Promise.resolve(hit);
      }
      this.emit("l1_miss");
    }
    const pending = this.inflight.get(k.value);
    if (pending) {
      if (!this.l1?.invalidatedSince(k.value, pending.l1Token)) {
        this.emit("coalesced");
        return pending.promise;
      }
      this.emit("coalesce_skipped");
    }
    const l1Token = this.l1?.readToken() ?? 0;
    const p: Promise<CacheRead<T>> = this.read(id, k, l1Token, load).finally(() => {
      if (this.inflight.get(k.value)?.promise === p) this.inflight.delete(k.value);
    });
    this.inflight.set(k.value, { promise: p, l1Token });
    return p;
  }

  /** A cached answer, served as is while invalidations are trusted, else revalidated first. */
  private served(id: string | number, k: EntityKeys, hit: CacheRead<T>, load: Load<T>): CacheRead<T> | Promise<CacheRead<T>> {
    return this.gate !== null && !this.gate.trusted ? this.revalidate(id, k, hit, load) : hit;
  }

  private async read(id: string | number, k: EntityKeys, l1Token: number, load: Load<T>): Promise<CacheRead<T>> {
    const token = randomUUID();
    let reply: Awaited<ReturnType<RedisTier["getOrLease"]>>;
    try {
      reply = await this.remote.getOrLease(k, token, this.opts.leaseMs);
    } catch {
      return this.bypass(load);
    }
    if (reply.kind === "leased") return this.fillAsLeaseHolder(k, reply.lease, l1Token, load);
    if (reply.kind === "wait") return this.waitForFill(id, k, l1Token, load);

    const now = this.opts.now();
    const entry = decodeStored(reply.payload, this.opts, now);
    if (entry && isAbsent(entry)) {
      this.emit("negative_hit");
      return this.served(id, k, { value: null, source: "HIT", ageMs: now - entry.storedAt }, load);
    }
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
      return this.served(id, k, { value: entry.value, source: "STALE", ageMs: now - entry.storedAt }, load);
    }
    if (shouldRefreshEarly(entry, now, this.opts.earlyRefreshBeta)) {
      this.emit("early_refresh");
      this.refreshInBackground(k, load);
    }
    this.emit("hit");
    this.storeL1(k, entry, l1Token);
    return this.served(id, k, { value: entry.value, source: "HIT", ageMs: now - entry.storedAt }, load);
  }

  /**
   * Bounded staleness: the watermark is older than Δ, so a missing invalidation is possible. The
   * cached answer is served if Postgres confirms its version (now, or by a probe begun within Δ);
   * otherwise it is evicted as the stuck invalidation would have done (fence included, so no older
   * fill lands after it) and the read goes through to Postgres.
   */
  private async revalidate(id: string | number, k: EntityKeys, hit: CacheRead<T>, load: Load<T>): Promise<CacheRead<T>> {
    const cached = hit.value === null ? ABSENT : this.opts.versionOf(hit.value);
    let current = this.confirmed.get(k.value);
    if (current !== cached) {
      try {
        current = await this.probe(id, k);
      } catch (err) {
        // Postgres unreachable or the bulkhead full: no change can be proven either way. Serving the
        // cached answer (marked STALE) keeps the catalog up through a Postgres outage, when nothing
        // can commit anyway (docs/architecture.md#failure-modes).
        this.suppressed("revalidate", err);
        this.emit("revalidate_failed");
        return { ...hit, source: "STALE" };
      }
    }
    if (current === cached) {
      this.emit("revalidated");
      return { ...hit, source: "REVALIDATED" };
    }
    this.emit("revalidate_stale");
    const pending = this.rereads.get(k.value);
    if (pending) return pending;
    const evictAndRead = async (): Promise<CacheRead<T>> => {
      this.l1?.invalidate(k.value);
      // A row gone since: fence one above the cached version (no fill of it lands any more).
      const version = current === ABSENT ? cached + 1 : (current as number);
      await this.remote.invalidate(k, version, this.opts.fenceTtlMs).catch((err) => this.suppressed("revalidate_evict", err));
      return { value: await this.fallbackLoad(load), source: "MISS", ageMs: 0 };
    };
    const p = evictAndRead().finally(() => this.rereads.delete(k.value));
    this.rereads.set(k.value, p);
    return p;
  }

  /** The row's version in Postgres, one probe per key at a time in this process, under the bulkhead. */
  private probe(id: string | number, k: EntityKeys): Promise<number> {
    const pending = this.probes.get(k.value);
    if (pending) return pending;
    const staleness = this.opts.staleness;
    if (!staleness) return Promise.resolve(ABSENT);
    const startedAt = performance.now();
    // Bounded: a hung Postgres (established connections, no answer; its statement_timeout cannot
    // fire) otherwise held every read of this key for the whole outage instead of serving STALE.
    // The query itself keeps its bulkhead slot until it ends, so a long hang fills the bulkhead and
    // later probes are refused at once (STALE) rather than queued.
    const timeoutMs = staleness.probeTimeoutMs ?? 500;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`version probe timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    const p = Promise.race([this.fallback.execute(() => staleness.probeVersion(id)), deadline])
      .then((v) => {
        const version = v ?? ABSENT;
        // Confirmed as of when the probe began: good for what is left of Δ from then.
        const ttl = Math.floor(staleness.deltaMs - (performance.now() - startedAt));
        if (ttl > 0) this.confirmed.set(k.value, version, { ttl });
        return version;
      })
      .finally(() => {
        clearTimeout(timer);
        this.probes.delete(k.value);
      });
    this.probes.set(k.value, p);
    return p;
  }

  private async fillAsLeaseHolder(k: EntityKeys, lease: Lease, l1Token: number, load: Load<T>): Promise<CacheRead<T>> {
    this.emit("miss");
    let filled: Filled<T>;
    try {
      filled = await this.loadAndFill(k, lease, load, "fill");
    } catch (err) {
      // Let the waiters go to the DB themselves rather than wait out our lease.
      await this.releaseLease(k, lease.token);
      throw err;
    }
    if (!filled.entry) return { value: null, source: "MISS", ageMs: 0 };
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
  private async loadAndFill(k: EntityKeys, lease: Lease, load: Load<T>, failure: SuppressedOperation): Promise<Filled<T>> {
    const startedAt = this.opts.now();
    const value = await load();
    const now = this.opts.now();
    if (value === null) {
      if (this.opts.negativeTtlMs <= 0 || now - startedAt > this.opts.maxFillAgeMs) {
        await this.releaseLease(k, lease.token);
        return { entry: null, stored: false };
      }
      // "No such row", judged against the fence as it stood when the lease was taken: any change of
      // it since (an INSERT's invalidation; a delete fence lowered or swept) refuses this fill.
      const absent = createAbsentEntry({ startedAt, now, ttlMs: this.opts.negativeTtlMs });
      const stored = await this.fillPayload(k, lease, null, encodeEntry(absent), this.opts.negativeTtlMs, failure);
      return { entry: null, stored };
    }
    const { entry, ttlMs } = createEntry(this.opts, value, { startedAt, now, baseTtlMs: this.opts.ttlMs, jitter: this.opts.jitter });
    if (ttlMs === 0 || now - startedAt > this.opts.maxFillAgeMs) {
      await this.releaseLease(k, lease.token);
      return { entry, stored: false };
    }
    const ttl = storedTtlMs(this.opts, entry, ttlMs, this.opts.staleGraceMs);
    return { entry, stored: await this.fillPayload(k, lease, entry.version, encodeEntry(entry), ttl, failure) };
  }

  /** The FILL script; a refused fill has released our lease (scripts.ts), a failed one is reported. */
  private async fillPayload(
    k: EntityKeys,
    lease: Lease,
    /** null: "no such row" (see RedisTier.fill). */
    version: number | null,
    payload: string,
    ttl: number,
    failure: SuppressedOperation,
  ): Promise<boolean> {
    try {
      const stored = await this.remote.fill(k, lease, version, payload, ttl, lease.at + this.opts.maxFillAgeMs);
      this.emit(stored ? "fill" : "fill_refused");
      return stored;
    } catch (err) {
      // The value we read is still the DB's answer; only the fill failed.
      this.suppressed(failure, err);
      return false;
    }
  }

  private async waitForFill(id: string | number, k: EntityKeys, l1Token: number, load: Load<T>): Promise<CacheRead<T>> {
    this.emit("lease_wait");
    const deadline = this.opts.now() + this.opts.waitForFillMs;
    let delay = 2;
    const token = randomUUID();
    while (this.opts.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 25);
      let raw: string | null = null;
      try {
        // Not a plain GET: a holder whose fill was refused (or who gave up) released the lease, and
        // the first waiter to see that takes it over instead of waiting the rest of waitForFillMs.
        const reply = await this.remote.getOrLease(k, token, this.opts.leaseMs);
        if (reply.kind === "leased") return this.fillAsLeaseHolder(k, reply.lease, l1Token, load);
        if (reply.kind === "hit") raw = reply.payload;
      } catch {
        return this.bypass(load);
      }
      const now = this.opts.now();
      const entry = raw === null ? null : decodeStored(raw, this.opts, now);
      if (entry && !isExpired(entry, now)) {
        if (isAbsent(entry)) {
          this.emit("negative_hit");
          return this.served(id, k, { value: null, source: "HIT", ageMs: now - entry.storedAt }, load);
        }
        this.emit("hit");
        this.storeL1(k, entry, l1Token);
        return this.served(id, k, { value: entry.value, source: "HIT", ageMs: now - entry.storedAt }, load);
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
      const lease = await this.remote.tryLease(k, token, this.opts.leaseMs);
      if (lease === null) return;
      // A failed refresh keeps its lease until it expires (leaseMs): a sick Postgres then
      // gets one refresh attempt per key per lease period, not one per stale read.
      const filled = await this.loadAndFill(k, lease, load, "background_refresh");
      // The row is gone: stop serving the old value (a delete event will fence it too).
      if (!filled.entry && !filled.stored) await this.remote.delete(k.value);
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
