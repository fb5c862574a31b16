import type { EntryRules } from "./entry.ts";
import type { FreshnessGate } from "./freshness.ts";
import type { EntityKeys } from "./keys.ts";
import type { L1Invalidations } from "./l1-invalidations.ts";
import { PlainCache } from "./plain-cache.ts";
import { ProtocolCache } from "./protocol-cache.ts";
import type { RedisClient } from "./redis-client.ts";
import type { BreakerOptions } from "./redis-tier.ts";

/** How a read was served; becomes the `X-Cache` response header (docs/architecture.md#cache-protocol). */
export type CacheSource = "HIT-L1" | "HIT" | "MISS" | "STALE" | "BYPASS" | "REVALIDATED";

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
  | "stale_while_revalidate"
  /** Bounded staleness (watermark older than Δ): a cached value confirmed by the version probe… */
  | "revalidated"
  /** …found older than Postgres (the invalidation it needed is stuck): evicted and read through… */
  | "revalidate_stale"
  /** …or the probe failed (Postgres down / bulkhead full): served as STALE. */
  | "revalidate_failed"
  /** A cached "no such row" answered. */
  | "negative_hit"
  /** A read in flight was not joined: its key was invalidated since it began. */
  | "coalesce_skipped";

/**
 * The failures a cache deliberately does not propagate (the read is still answered); each one
 * reaches `onSuppressedError` with the error. A Redis read that fails is not among them: it is
 * answered from Postgres and counted as a `bypass` event.
 */
export type SuppressedOperation =
  /** Releasing a lease after a failed DB read or a value not to be cached; waiters then wait it out. */
  | "lease_release"
  /** Deleting an unreadable payload (it is read around, and replaced by the next fill). */
  | "invalid_payload_delete"
  /** Storing a value read as lease holder (the reader still gets the DB's answer). */
  | "fill"
  /** A stale-while-revalidate or early refresh in the background, its fill included (the old value keeps being served). */
  | "background_refresh"
  /** Plain cache-aside baseline: its Redis read (then a miss) or its fill. */
  | "plain_read"
  | "plain_fill"
  /** The version probe of bounded staleness (the cached value is then served as STALE). */
  | "revalidate"
  /** Evicting, as the invalidator would have, a value the version probe found older than Postgres. */
  | "revalidate_evict";

/** What the services use: read through the tiers, with `load` reading the source of truth. */
export interface VersionedCache<T> {
  get(id: string | number, load: () => Promise<T | null>): Promise<CacheRead<T>>;
  keys(id: string | number): EntityKeys;
  /** "closed" | "open" | "halfOpen" | "isolated": the Redis circuit breaker, for /readyz and tests. */
  readonly redisCircuit: string;
}

/** "protocol" (production) or "plain" cache-aside without leases, fences or coalescing (CACHE_MODE). */
export type CacheMode = "protocol" | "plain";

export interface VersionedCacheOptions<T> extends EntryRules<T> {
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
  onEvent?(event: CacheEvent): void;
  /** Every failure the cache swallows on purpose, with what it was doing (log it, count it). */
  onSuppressedError?(operation: SuppressedOperation, err: unknown): void;
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
  breaker?: BreakerOptions;
  /** Bulkhead for DB reads that bypass the lease (Redis down, wait timed out): bounded concurrency + queue. */
  fallbackReads?: { limit?: number; queue?: number };
  /**
   * Bounded staleness (docs/architecture.md#cache-protocol): while `gate.trusted` is false (the
   * invalidation watermark is older than Δ, or unreadable) no cached value is served unchecked: each
   * is compared with `probeVersion(id)` (coalesced per key, under the fallback bulkhead; a key
   * confirmed within `deltaMs` is served without a new probe) and, when older, evicted and read
   * through. Absent: invalidations are always trusted.
   */
  staleness?: {
    gate: FreshnessGate;
    deltaMs: number;
    /** The row's current version, null if there is no row: a cheap read (one indexed column). */
    probeVersion(id: string | number): Promise<number | null>;
    /** Confirmations kept (LRU); default 10,000. */
    maxConfirmed?: number;
    /** A probe not answered within this is a failed probe (the cached answer is served STALE); default 500 ms. */
    probeTimeoutMs?: number;
  };
  /** How long a fence raised by this cache (a stale value found by the probe) is kept; default 60 s. */
  fenceTtlMs?: number;
  /**
   * Negative caching: a missing row is cached as absent this long (with the lease and fence
   * protection of any fill; an invalidation of the id deletes it). 0 (default) = off.
   */
  negativeTtlMs?: number;
  /**
   * "plain" exists only so the stampede benchmark can show what the protocol prevents;
   * never use it in production. Default "protocol".
   */
  mode?: CacheMode;
}

/** The cache for `options.mode`: the consistency protocol, or the benchmark's plain baseline. */
export function createVersionedCache<T>(options: VersionedCacheOptions<T>): VersionedCache<T> {
  return options.mode === "plain" ? new PlainCache<T>(options) : new ProtocolCache<T>(options);
}
