import { createRedisClient, StockGate } from "@flashsale/cache";
import { checkoutSchema, httpLimits, loadConfig } from "@flashsale/config";
import { createDb } from "@flashsale/db";
import { closeGracefully, countDbQuery } from "@flashsale/http";
import { createLogger, createMetricsRegistry, shutdownTracing } from "@flashsale/telemetry";
import { buildCheckoutApp, DEFAULT_GROUP_COMMIT } from "./app.ts";
import { checkoutProductCache } from "./product-cache.ts";

const config = loadConfig(checkoutSchema);
const logger = createLogger("checkout", config.LOG_LEVEL);
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

const metrics = createMetricsRegistry("checkout");
const app = await buildCheckoutApp({
  db,
  redis,
  logger,
  metrics,
  trackDbQueries: config.DB_QUERY_METRICS,
  limits: httpLimits(config),
  productCache: checkoutProductCache(config, redis, metrics, logger),
  gate: config.STOCK_GATE_ENABLED ? new StockGate(redis) : null,
  groupCommit: DEFAULT_GROUP_COMMIT,
  // Every lane's batch can fill; beyond that CHECKOUT_QUEUE may wait, then 503.
  transactions: { limit: DEFAULT_GROUP_COMMIT.lanes * DEFAULT_GROUP_COMMIT.maxBatch, queue: config.CHECKOUT_QUEUE },
  rateLimit: { max: config.CHECKOUT_RATE_LIMIT_MAX, windowMs: config.CHECKOUT_RATE_LIMIT_WINDOW_MS },
  checkoutDeadlineMs: config.DB_STATEMENT_TIMEOUT_MS + 1_000,
});
closeGracefully(app, [() => redis.quit(), () => db.$disconnect(), shutdownTracing]);
await app.listen({ host: config.HOST, port: config.PORT });
