import { randomUUID } from "node:crypto";
import { type BulkheadPolicy, bulkhead, type CircuitBreakerPolicy, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel";
import { type EntityKeys, entityKeys } from "./keys.ts";
import { type L1Entry, L1Store } from "./l1.ts";
import type { L1Invalidations } from "./l1-invalidations.ts";
import type { RedisClient } from "./redis-client.ts";
import { type ScriptCommands, withScripts } from "./scripts.ts";
import { jitteredTtlMs } from "./ttl.ts";

/** How a read was served; becomes the `X-Cache` response header (design.md §4.8). */
export type CacheSource = "HIT-L1" | "HIT" | "MISS" | "STALE" | "BYPASS";

export interface CacheRead<T> {
  value: T | null;
  source: CacheSource;
  /** Milliseconds since the value was read from Postgres. */
  ageMs: number;
}

export type CacheEvent =
  | "l1_hit"
  | "l1_miss"
  | "hit"
  | "miss"
  | "fill"
  | "fill_refused"
  | "lease_wait"
  | "lease_wait_timeout"
  | "coalesced"
  | "bypass"
  | "invalid_payload"
  | "early_refresh"
  | "stale_while_revalidate";

export interface VersionedCacheOptions<T> {
  redis: RedisClient;
  /** Entity name in the key, e.g. "product". */
  entity: string;
  schemaVersion: number;
  ttlMs: number;
  /** Fractional TTL jitter, 0.05 = +/- 5 %. */
  jitter?: number;
  leaseMs: number;
  /** How long a reader that lost the lease race waits for the holder's fill before reading the DB itself. */
  waitForFillMs?: number;
  /**
   * A fill whose DB read took longer than this is dropped: the fence protecting it
   * has a TTL, and a read that slow may predate a fence that has already expired.
   */
  maxFillAgeMs?: number;
  versionOf(value: T): number;
  /** The next instant the value becomes wrong without any write (epoch ms), or null. */
  validUntilMs(value: T): number | null;
  /** Guards against payloads of another code version: invalid = miss, never served. */
  isValid(value: unknown): value is T;
  onEvent?(event: CacheEvent): void;
  now?: () => number;
  /** In-process tier; only used while its invalidation channel is up. */
  l1?: { invalidations: L1Invalidations; maxEntries?: number; ttlMs?: number };
  /** XFetch beta (probabilistic early refresh before expiry); 0 disables it. */
  earlyRefreshBeta?: number;
  /**
   * After a TTL expiry (no evidence of change) the old value may be served this long while
   * one caller refreshes; this is also the stale-if-error window when Postgres is down.
   */
  staleGraceMs?: number;
  /** Redis circuit breaker: opens after this many consecutive failures, probes again after halfOpenAfterMs. */
  breaker?: { consecutiveFailures?: number; halfOpenAfterMs?: number };
  /** Bulkhead for DB reads that bypass the lease (Redis down, wait timed out): bounded concurrency + queue. */
  fallbackReads?: { limit?: number; queue?: number };
  /**
   * false = plain cache-aside (no lease, no fence, no coalescing). Exists only so the
   * stampede benchmark can show what the protocol prevents; never use it in production.
   */
  stampedeProtection?: boolean;
}

/** What is stored in Redis. `version` sits at the top level for the INVALIDATE script. */
interface Envelope<T> {
  version: number;
  storedAt: number;
  /** Logical expiry (TTL end); the Redis key may live up to staleGraceMs longer. */
  expiresAt: number;
  /** How long the DB read took (ms): XFetch refreshes expensive values earlier. */
  delta: number;
  value: T;
}

type Defaults = "jitter" | "waitForFillMs" | "maxFillAgeMs" | "now" | "earlyRefreshBeta" | "staleGraceMs" | "stampedeProtection";

/**
 * THE consistency protocol (design.md §4): L1 (bounded, in-process, kept coherent by
 * Redis invalidation messages) -> Redis (leases: one DB read per key per miss across
 * the fleet; fences: no stale fill after an invalidation; TTL jittered and capped at
 * validUntil; XFetch early refresh; stale-while-revalidate only after a TTL expiry,
 * which doubles as stale-if-error) -> Postgres. Concurrent misses in one process share
 * one promise. Redis failures open a circuit breaker and reads go to Postgres under a
 * bulkhead (`BYPASS`).
 */
export class VersionedCache<T> {
  private readonly redis: RedisClient & ScriptCommands;
  private readonly inflight = new Map<string, Promise<CacheRead<T>>>();
  private readonly refreshing = new Set<string>();
  private readonly opts: Required<Pick<VersionedCacheOptions<T>, Defaults>> & VersionedCacheOptions<T>;
  private readonly l1: L1Store<T> | null;
  private readonly l1TtlMs: number;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly fallback: BulkheadPolicy;

  constructor(options: VersionedCacheOptions<T>) {
    this.opts = {
      jitter: 0.05,
      waitForFillMs: 300,
      maxFillAgeMs: 10_000,
      now: Date.now,
      earlyRefreshBeta: 1,
      staleGraceMs: 60_000,
      stampedeProtection: true,
      ...options,
    };
    this.redis = withScripts(options.redis);
    this.breaker = circuitBreaker(handleAll, {
      halfOpenAfter: options.breaker?.halfOpenAfterMs ?? 1_000,
      breaker: new ConsecutiveBreaker(options.breaker?.consecutiveFailures ?? 5),
    });
    this.fallback = bulkhead(options.fallbackReads?.limit ?? 16, options.fallbackReads?.queue ?? 256);
    this.l1TtlMs = options.l1?.ttlMs ?? 5_000;
    this.l1 = options.l1 ? new L1Store<T>({ maxEntries: options.l1.maxEntries ?? 10_000 }) : null;
    if (this.l1) options.l1?.invalidations.attach(this.l1);
  }

  keys(id: string | number): EntityKeys {
    return entityKeys(this.opts.schemaVersion, this.opts.entity, id);
  }

  /** "closed" | "open" | "halfOpen" | "isolated": the Redis circuit breaker, for /readyz and tests. */
  get redisCircuit(): string {
    return ["closed", "open", "halfOpen", "isolated"][this.breaker.state] ?? "unknown";
  }

  /** Read through the tiers; concurrent calls for one id in this process share one promise. */
  get(id: string | number, load: () => Promise<T | null>): Promise<CacheRead<T>> {
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
    if (!this.opts.stampedeProtection) return this.plainRead(k, load);
    const pending = this.inflight.get(k.value);
    if (pending) {
      this.emit("coalesced");
      return pending;
    }
    const p = this.read(k, load).finally(() => this.inflight.delete(k.value));
    this.inflight.set(k.value, p);
    return p;
  }

  private async read(k: EntityKeys, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    const token = randomUUID();
    const l1Token = this.l1?.readToken() ?? 0;
    let reply: [1, string] | [2] | [3];
    try {
      reply = await this.l2(() => this.redis.fsGetOrLease(k.value, k.lease, token, String(this.opts.leaseMs)));
    } catch {
      return this.bypass(load);
    }
    if (reply[0] === 2) return this.fillAsLeaseHolder(k, token, l1Token, load);
    if (reply[0] === 3) return this.waitForFill(k, l1Token, load);

    const env = this.decode(reply[1]);
    if (!env) {
      // Unreadable payload (older schema or corruption): drop it and read fresh.
      this.emit("invalid_payload");
      await this.l2(() => this.redis.del(k.value)).catch(() => {});
      return { value: await this.fallbackLoad(load), source: "MISS", ageMs: 0 };
    }
    const now = this.opts.now();
    if (now >= env.expiresAt) {
      // TTL over but the key is still within its grace period: nothing says the row
      // changed (an invalidation would have deleted the key), so serve it while one
      // caller refreshes (if Postgres is down, until the grace ends: stale-if-error).
      this.emit("stale_while_revalidate");
      this.refreshInBackground(k, load);
      return { value: env.value, source: "STALE", ageMs: now - env.storedAt };
    }
    if (this.shouldRefreshEarly(env, now)) {
      this.emit("early_refresh");
      this.refreshInBackground(k, load);
    }
    this.emit("hit");
    this.storeL1(k, env, l1Token);
    return { value: env.value, source: "HIT", ageMs: now - env.storedAt };
  }

  private async fillAsLeaseHolder(k: EntityKeys, token: string, l1Token: number, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("miss");
    let filled: Awaited<ReturnType<typeof this.loadAndFill>>;
    try {
      filled = await this.loadAndFill(k, token, load);
    } catch (err) {
      // Let the waiters go to the DB themselves rather than wait out our lease.
      await this.l2(() => this.redis.fsReleaseLease(k.lease, token)).catch(() => {});
      throw err;
    }
    if (!filled) return { value: null, source: "MISS", ageMs: 0 };
    if (filled.stored) this.storeL1(k, filled.env, l1Token);
    return { value: filled.env.value, source: "MISS", ageMs: this.opts.now() - filled.env.storedAt };
  }

  /**
   * Reads the DB as lease holder and fills Redis unless fenced. Returns what was read
   * (null: no row) and whether it was stored: a refused fill means our read raced a
   * write, so the value must not go into L1 either.
   */
  private async loadAndFill(
    k: EntityKeys,
    token: string,
    load: () => Promise<T | null>,
  ): Promise<{ env: Envelope<T>; stored: boolean } | null> {
    const startedAt = this.opts.now();
    const value = await load();
    const now = this.opts.now();
    if (value === null) {
      await this.l2(() => this.redis.fsReleaseLease(k.lease, token)).catch(() => {});
      return null;
    }
    const validUntil = this.opts.validUntilMs(value);
    const ttlMs = jitteredTtlMs({ baseMs: this.opts.ttlMs, jitter: this.opts.jitter, nowMs: now, validUntilMs: validUntil });
    const env: Envelope<T> = {
      version: this.opts.versionOf(value),
      storedAt: startedAt,
      expiresAt: now + ttlMs,
      delta: Math.max(1, now - startedAt),
      value,
    };
    if (ttlMs === 0 || now - startedAt > this.opts.maxFillAgeMs) {
      await this.l2(() => this.redis.fsReleaseLease(k.lease, token)).catch(() => {});
      return { env, stored: false };
    }
    // Grace for stale-while-revalidate, but never past validUntil.
    const grace = validUntil === null ? this.opts.staleGraceMs : Math.max(0, Math.min(this.opts.staleGraceMs, validUntil - env.expiresAt));
    try {
      const filled = await this.l2(() =>
        this.redis.fsFill(k.value, k.lease, k.fence, token, String(env.version), JSON.stringify(env), String(ttlMs + grace)),
      );
      this.emit(filled === 1 ? "fill" : "fill_refused");
      return { env, stored: filled === 1 };
    } catch {
      // The value we read is still the DB's answer; only the fill failed.
      return { env, stored: false };
    }
  }

  private async waitForFill(k: EntityKeys, l1Token: number, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("lease_wait");
    const deadline = this.opts.now() + this.opts.waitForFillMs;
    let delay = 2;
    while (this.opts.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 25);
      let raw: string | null;
      try {
        raw = await this.l2(() => this.redis.get(k.value));
      } catch {
        return this.bypass(load);
      }
      const env = raw === null ? null : this.decode(raw);
      if (env && this.opts.now() < env.expiresAt) {
        this.emit("hit");
        this.storeL1(k, env, l1Token);
        return { value: env.value, source: "HIT", ageMs: this.opts.now() - env.storedAt };
      }
    }
    this.emit("lease_wait_timeout");
    return { value: await this.fallbackLoad(load), source: "MISS", ageMs: 0 };
  }

  private async bypass(load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("bypass");
    return { value: await this.fallbackLoad(load), source: "BYPASS", ageMs: 0 };
  }

  /** DB reads outside the lease protocol are bounded: at most `limit` at once, then a queue, then rejection. */
  private fallbackLoad(load: () => Promise<T | null>): Promise<T | null> {
    return this.fallback.execute(load);
  }

  /** XFetch (Vattani et al.): refresh early with a probability that grows near expiry and with recompute cost. */
  private shouldRefreshEarly(env: Envelope<T>, now: number): boolean {
    const beta = this.opts.earlyRefreshBeta;
    return beta > 0 && now - env.delta * beta * Math.log(Math.random()) >= env.expiresAt;
  }

  private refreshInBackground(k: EntityKeys, load: () => Promise<T | null>): void {
    if (this.refreshing.has(k.value)) return;
    this.refreshing.add(k.value);
    const token = randomUUID();
    void (async () => {
      const leased = await this.l2(() => this.redis.fsTryLease(k.lease, token, String(this.opts.leaseMs)));
      if (leased !== 1) return;
      // A failed refresh keeps its lease until it expires (leaseMs): a sick Postgres then
      // gets one refresh attempt per key per lease period, not one per stale read.
      const filled = await this.loadAndFill(k, token, load);
      // The row is gone: stop serving the old value (a delete event will fence it too).
      if (!filled) await this.l2(() => this.redis.del(k.value));
    })()
      .catch(() => {})
      .finally(() => this.refreshing.delete(k.value));
  }

  /** Plain cache-aside, for the stampede benchmark's baseline only (see stampedeProtection). */
  private async plainRead(k: EntityKeys, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    const raw = await this.l2(() => this.redis.get(k.value)).catch(() => null);
    const env = raw === null ? null : this.decode(raw);
    if (env) return { value: env.value, source: "HIT", ageMs: this.opts.now() - env.storedAt };
    this.emit("miss");
    const startedAt = this.opts.now();
    const value = await load();
    if (value !== null) {
      const now = this.opts.now();
      const ttlMs = jitteredTtlMs({
        baseMs: this.opts.ttlMs,
        jitter: this.opts.jitter,
        nowMs: now,
        validUntilMs: this.opts.validUntilMs(value),
      });
      const fresh: Envelope<T> = { version: this.opts.versionOf(value), storedAt: startedAt, expiresAt: now + ttlMs, delta: 1, value };
      if (ttlMs > 0) await this.l2(() => this.redis.set(k.value, JSON.stringify(fresh), "PX", ttlMs)).catch(() => {});
    }
    return { value, source: "MISS", ageMs: 0 };
  }

  private storeL1(k: EntityKeys, env: Envelope<T>, l1Token: number): void {
    if (!this.l1) return;
    const now = this.opts.now();
    const validUntil = this.opts.validUntilMs(env.value);
    const ttl = Math.min(this.l1TtlMs, env.expiresAt - now, validUntil === null ? Number.POSITIVE_INFINITY : validUntil - now);
    const entry: L1Entry<T> = { value: env.value, version: env.version, storedAt: env.storedAt, hardExpiry: validUntil };
    this.l1.store(k.value, entry, Math.floor(ttl), l1Token);
  }

  private decode(raw: string): Envelope<T> | null {
    try {
      const env = JSON.parse(raw) as Partial<Envelope<unknown>>;
      if (typeof env.storedAt !== "number" || typeof env.expiresAt !== "number" || typeof env.version !== "number") return null;
      if (!this.opts.isValid(env.value)) return null;
      const validUntil = this.opts.validUntilMs(env.value);
      // Belt and braces: the Redis TTL is already capped at validUntil.
      if (validUntil !== null && validUntil <= this.opts.now()) return null;
      return env as Envelope<T>;
    } catch {
      return null;
    }
  }

  /** Every Redis call goes through the breaker: once open, reads bypass Redis without waiting on timeouts. */
  private l2<R>(fn: () => Promise<R>): Promise<R> {
    return this.breaker.execute(fn);
  }

  private emit(event: CacheEvent): void {
    this.opts.onEvent?.(event);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
