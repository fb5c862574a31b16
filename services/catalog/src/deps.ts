import { FreshnessMonitor, type RedisClient, sweepFences, type VersionedCacheOptions } from "@flashsale/cache";
import type { CatalogConfig } from "@flashsale/config";
import type { Db, ProductRecord } from "@flashsale/db";
import type { ProductCache } from "@flashsale/product-cache";
import type { Logger } from "@flashsale/telemetry";

/** What the catalog's route plugins need, declared once (app.ts builds it; routes/ receive it). */
export interface CatalogDeps {
  db: Db;
  redis: RedisClient;
  cache: ProductCache;
  adminToken: string;
}

/**
 * The staleness bound's version probe for products (docs/architecture.md#cache-protocol): one
 * indexed column, the cheapest read that says whether a cached product is current.
 */
export function productVersionProbe(db: Db): (id: string | number) => Promise<number | null> {
  return async (id) => {
    const rows = await db.$queryRaw<{ version: bigint | number }[]>`SELECT version FROM products WHERE id = ${Number(id)}`;
    return rows[0] ? Number(rows[0].version) : null;
  };
}

type FreshnessConfig = Pick<
  CatalogConfig,
  | "CACHE_SCHEMA_VERSION"
  | "CACHE_STALENESS_BOUND_MS"
  | "CACHE_WATERMARK_POLL_MS"
  | "CACHE_UNPUBLISHED_WATERMARK"
  | "CACHE_NEGATIVE_TTL_MS"
  | "CACHE_FENCE_SWEEP_MS"
>;

export interface CacheFreshness {
  monitor: FreshnessMonitor;
  /** Spread into the product cache's options. */
  cacheOptions: { staleness?: VersionedCacheOptions<ProductRecord>["staleness"]; negativeTtlMs?: number };
  stop(): void;
}

/**
 * The catalog's side of the freshness facts (packages/cache freshness.ts): the watermark monitor
 * behind the staleness bound (each mode change logged once), the announcement of the cache schema
 * version this catalog serves (the invalidator evicts every announced one), and the sweep of fences
 * whose time is up (fences carry no Redis TTL). Started before the app, stopped on shutdown.
 */
export async function startCacheFreshness(o: {
  config: FreshnessConfig;
  redis: RedisClient;
  db: Db;
  logger: Logger;
}): Promise<CacheFreshness> {
  const c = o.config;
  const deltaMs = c.CACHE_STALENESS_BOUND_MS;
  const monitor = new FreshnessMonitor({
    redis: o.redis,
    // Δ 0 = the bound off; the monitor still runs for the announcement and /metrics.
    deltaMs: deltaMs > 0 ? deltaMs : 2_000,
    pollMs: c.CACHE_WATERMARK_POLL_MS,
    timeoutMs: c.CACHE_WATERMARK_POLL_MS,
    unpublished: c.CACHE_UNPUBLISHED_WATERMARK,
    announce: { schemaVersions: [c.CACHE_SCHEMA_VERSION], ttlMs: 5_000, everyMs: 1_000 },
    onModeChange: (mode, ageMs) =>
      o.logger.warn(
        { mode, watermarkAgeMs: ageMs === null ? null : Math.round(ageMs), deltaMs, published: monitor.isPublished },
        mode === "trusting"
          ? "cache freshness: watermark fresh, invalidations trusted"
          : "cache freshness: watermark old or unreadable, revalidating every served key",
      ),
    onError: (err) => o.logger.debug({ err: (err as Error).message }, "cache freshness: watermark poll failed"),
  });
  await monitor.start();
  const sweeper =
    c.CACHE_FENCE_SWEEP_MS > 0
      ? setInterval(() => {
          sweepFences(o.redis).catch((err: Error) => o.logger.warn({ err: err.message }, "fence sweep failed"));
        }, c.CACHE_FENCE_SWEEP_MS).unref()
      : null;
  return {
    monitor,
    cacheOptions: {
      ...(deltaMs > 0 ? { staleness: { gate: monitor, deltaMs, probeVersion: productVersionProbe(o.db) } } : {}),
      ...(c.CACHE_NEGATIVE_TTL_MS > 0 ? { negativeTtlMs: c.CACHE_NEGATIVE_TTL_MS } : {}),
    },
    stop: () => {
      monitor.stop();
      if (sweeper) clearInterval(sweeper);
    },
  };
}
