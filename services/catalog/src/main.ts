import { createRedisClient, keyPrefix, L1Invalidations } from "@flashsale/cache";
import { catalogSchema, httpLimits, loadConfig } from "@flashsale/config";
import { createDb } from "@flashsale/db";
import { closeGracefully, countDbQuery } from "@flashsale/http";
import { createLogger, createMetricsRegistry, shutdownTracing } from "@flashsale/telemetry";
import { buildCatalogApp } from "./app.ts";
import { freshnessTelemetry } from "./cache-telemetry.ts";
import { startCacheFreshness } from "./deps.ts";

const config = loadConfig(catalogSchema);
const logger = createLogger("catalog", config.LOG_LEVEL);
const db = createDb({
  url: config.DATABASE_URL,
  poolMax: config.DB_POOL_MAX,
  statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  // Counted only when the (opt-in) per-request metric is on.
  ...(config.DB_QUERY_METRICS ? { onQuery: countDbQuery } : {}),
});
const redis = createRedisClient({
  url: config.REDIS_URL,
  clusterNodes: config.REDIS_CLUSTER_NODES,
  commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  failFast: true,
});
redis.on("error", (err) => logger.warn({ err: err.message }, "redis error"));

const metrics = createMetricsRegistry("catalog");
// Staleness bound, schema-version announcement, fence sweep (deps.ts; docs/architecture.md#cache-protocol).
const freshness = await startCacheFreshness({ config, redis, db, logger });
const freshnessMetrics = freshnessTelemetry(metrics, freshness.monitor);

// L1 is only as good as its invalidation channel: it switches itself off while that is down,
// and while its end-to-end canary is not heard (a silently dead connection).
const invalidations = config.CACHE_L1_ENABLED
  ? new L1Invalidations(
      redis,
      keyPrefix(config.CACHE_SCHEMA_VERSION),
      (err) => logger.warn({ err: err.message }, "L1 invalidation channel"),
      {
        canary: { everyMs: config.CACHE_L1_CANARY_MS, deadlineMs: config.CACHE_L1_CANARY_DEADLINE_MS },
        onCanary: freshnessMetrics.onCanary,
      },
    )
  : null;
await invalidations?.start();

const app = await buildCatalogApp({
  db,
  redis,
  logger,
  metrics,
  trackDbQueries: config.DB_QUERY_METRICS,
  limits: httpLimits(config),
  writeEviction: { fenceTtlMs: config.FENCE_TTL_SECONDS * 1000 },
  warmUp: { top: config.CATALOG_WARMUP_TOP, ratePerSec: config.CATALOG_WARMUP_RATE },
  shedding: {
    maxEventLoopDelayMs: config.CATALOG_SHED_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes: config.CATALOG_SHED_HEAP_MB * 1024 * 1024,
    maxInFlight: config.CATALOG_SHED_MAX_IN_FLIGHT,
  },
  adminToken: config.ADMIN_TOKEN,
  cache: {
    schemaVersion: config.CACHE_SCHEMA_VERSION,
    ttlSeconds: config.CACHE_TTL_SECONDS,
    leaseMs: config.CACHE_LEASE_MS,
    mode: config.CACHE_MODE,
    fallbackReads: { limit: config.DB_FALLBACK_CONCURRENCY, queue: config.DB_FALLBACK_QUEUE },
    ...(invalidations ? { l1: { invalidations, ttlMs: config.CACHE_L1_TTL_MS, maxEntries: config.CACHE_L1_MAX_ENTRIES } } : {}),
    ...freshness.cacheOptions,
  },
});
closeGracefully(app, [
  async () => freshness.stop(),
  async () => invalidations?.stop(),
  () => redis.quit(),
  () => db.$disconnect(),
  shutdownTracing,
]);
await app.listen({ host: config.HOST, port: config.PORT });
