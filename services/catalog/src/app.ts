import type { RedisClient } from "@flashsale/cache";
import type { Db } from "@flashsale/db";
import { createServiceBase, type HttpLimits } from "@flashsale/http";
import { createProductCache, dbClockSource, type ProductCacheOptions } from "@flashsale/product-cache";
import type { Logger } from "@flashsale/telemetry";
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { cacheTelemetry } from "./cache-telemetry.ts";
import type { CatalogDeps } from "./deps.ts";
import { adminRoutes } from "./routes/admin.ts";
import { loadShedding } from "./routes/load-shedding.ts";
import { productRoutes } from "./routes/products.ts";
import { DemandWarmUp } from "./routes/warm-up.ts";
import { writeEviction } from "./routes/write-eviction.ts";

export interface BuildCatalogOptions {
  db: Db;
  redis: RedisClient;
  logger: Logger;
  metrics: Registry;
  adminToken: string;
  /** Product cache settings (the Redis client and the metrics hooks are wired here). */
  cache: Omit<ProductCacheOptions, "redis" | "onEvent" | "onSuppressedError">;
  /** See createServiceBase: per-request DB query counting (opt-in, DB_QUERY_METRICS). */
  trackDbQueries?: boolean;
  /** Request lifetimes (HTTP_* config); defaults from packages/http. */
  limits?: Partial<HttpLimits>;
  /** Admin writes evict what they changed (routes/write-eviction.ts); fence lifetime = the invalidator's. Default 60 s, 1 s budget. */
  writeEviction?: { fenceTtlMs: number; timeoutMs?: number };
  /** Demand tracking + prioritized warm-up after a cold start (routes/warm-up.ts); absent = off. */
  warmUp?: { top: number; ratePerSec: number; everyMs?: number; halfLifeMs?: number };
  /** Load shedding (routes/load-shedding.ts); absent = off (main.ts turns it on from config). */
  shedding?: { maxEventLoopDelayMs: number; maxHeapUsedBytes: number; maxInFlight?: number; sampleIntervalMs?: number };
}

/** The catalog HTTP app, wired but not listening (tests call inject() or listen on port 0). */
export async function buildCatalogApp(opts: BuildCatalogOptions): Promise<FastifyInstance> {
  // Effective prices are computed at the DB clock per response; the estimate is sampled by every
  // fill and, when no fill happened for a while, by a probe (docs/architecture.md#price-schedule-and-the-db-clock).
  const clock = dbClockSource(opts.db, { onError: (err) => opts.logger.warn({ err: (err as Error).message }, "DB clock probe failed") });
  const cache = createProductCache({ redis: opts.redis, clock, ...opts.cache, ...cacheTelemetry(opts.metrics, opts.logger) });
  const deps: CatalogDeps = { db: opts.db, redis: opts.redis, cache, adminToken: opts.adminToken };

  const postgresUp = async () => void (await opts.db.$queryRaw`SELECT 1`);
  const redisUp = async () => void (await opts.redis.ping());
  const app = await createServiceBase({
    title: "flashsale catalog",
    logger: opts.logger,
    metrics: opts.metrics,
    trackDbQueries: opts.trackDbQueries ?? false,
    ...(opts.limits ? { limits: opts.limits } : {}),
    // Ready while it can answer from the cache or from Postgres (the designed degradation: without
    // Redis it reads Postgres, BYPASS; without Postgres it serves what is cached). A Postgres outage
    // alone must not take every catalog out of a load balancer's rotation (deploy/k8s probes).
    readiness: [
      { name: "postgres", check: postgresUp, required: false },
      { name: "redis", check: redisUp, required: false },
      // Judged from the two checks above (each asked once per probe), not by asking again.
      { name: "cache_or_postgres", anyOf: ["postgres", "redis"], failure: "neither Redis nor Postgres answers" },
    ],
  });
  const evictAfterWrite = writeEviction({
    redis: opts.redis,
    schemaVersion: opts.cache.schemaVersion,
    fenceTtlMs: opts.writeEviction?.fenceTtlMs ?? 60_000,
    ...(opts.writeEviction?.timeoutMs !== undefined ? { timeoutMs: opts.writeEviction.timeoutMs } : {}),
    logger: opts.logger,
    metrics: opts.metrics,
  });
  const warmUp = opts.warmUp
    ? new DemandWarmUp({
        redis: opts.redis,
        db: opts.db,
        cache,
        schemaVersion: opts.cache.schemaVersion,
        logger: opts.logger,
        metrics: opts.metrics,
        ...opts.warmUp,
      })
    : null;
  if (warmUp) {
    app.addHook("onReady", async () => warmUp.start());
    app.addHook("onClose", async () => warmUp.stop());
  }
  // The API routes in one scope with load shedding; /healthz, /readyz and /metrics stay outside it.
  await app.register(async (api) => {
    await loadShedding(api, {
      maxEventLoopDelayMs: opts.shedding?.maxEventLoopDelayMs ?? 0,
      maxHeapUsedBytes: opts.shedding?.maxHeapUsedBytes ?? 0,
      maxInFlight: opts.shedding?.maxInFlight ?? 0,
      ...(opts.shedding?.sampleIntervalMs !== undefined ? { sampleIntervalMs: opts.shedding.sampleIntervalMs } : {}),
      metrics: opts.metrics,
    });
    await api.register(productRoutes, { deps, ...(warmUp ? { onRead: (id: number) => warmUp.record(id) } : {}) });
    await api.register(adminRoutes, { deps, evictAfterWrite });
  });
  return app;
}
