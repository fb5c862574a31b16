import { createRedisClient } from "@flashsale/cache";
import { httpLimits, invalidatorSchema, loadConfig } from "@flashsale/config";
import { closeGracefully } from "@flashsale/http";
import { createLogger, createMetricsRegistry, shutdownTracing } from "@flashsale/telemetry";
import pg from "pg";
import { buildInvalidatorApp } from "./app.ts";
import { startConsistencyJob } from "./consistency-job.ts";
import { startInvalidator } from "./consumer.ts";
import { startConsumerLagGauge } from "./consumer-lag.ts";
import { createKafka } from "./kafka.ts";
import { invalidatorTopics } from "./topics.ts";

const config = loadConfig(invalidatorSchema);
const logger = createLogger("invalidator", config.LOG_LEVEL);
const metrics = createMetricsRegistry("invalidator");
// Unlike the catalog, the invalidator WANTS to wait for Redis: an eviction is retried, never dropped.
const redis = createRedisClient({
  url: config.REDIS_URL,
  clusterNodes: config.REDIS_CLUSTER_NODES,
  commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  failFast: false,
});
redis.on("error", (err) => logger.warn({ err: err.message }, "redis error"));

// Health before Kafka (README "Probes"): /healthz answers while Kafka is still unreachable, so a
// startup or liveness probe never restarts the process for an outage it waits out; /readyz says
// "kafka: consumer not running" until the consumer has joined its group.
let isConsuming = () => false;
const app = await buildInvalidatorApp({ redis, logger, metrics, isConsuming: () => isConsuming(), limits: httpLimits(config) });
await app.listen({ host: config.HOST, port: config.PORT });

const pool = new pg.Pool({
  connectionString: config.DATABASE_URL,
  max: 2,
  connectionTimeoutMillis: 2_000,
  statement_timeout: config.DB_STATEMENT_TIMEOUT_MS,
  // A server that does not answer at all cannot enforce its statement timeout (packages/db client.ts).
  query_timeout: config.DB_STATEMENT_TIMEOUT_MS + 1_000,
});
// Idle clients die with a Postgres restart; the pool reconnects on next use, the process must not crash.
pool.on("error", (err) => logger.warn({ err: err.message }, "postgres pool client error"));

const kafka = createKafka(config.KAFKA_BROKERS, "flashsale-invalidator", logger);
// Kafka unreachable at start: keep trying (kafkajs gives up after its own retries) instead of exiting.
const invalidator = await untilStarted(() =>
  startInvalidator({
    kafka,
    redis,
    logger,
    metrics,
    groupId: config.KAFKA_GROUP_ID,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
    schemaVersion: config.CACHE_SCHEMA_VERSION,
    fenceTtlMs: config.FENCE_TTL_SECONDS * 1000,
    newGroupStartsAt: config.KAFKA_NEW_GROUP_START,
    // The freshness watermark (docs/architecture.md#freshness): heartbeat rows, DB<->Redis clock offset.
    pool,
  }),
);
const consumerLag = startConsumerLagGauge({
  kafka,
  groupId: config.KAFKA_GROUP_ID,
  topics: invalidatorTopics(config.KAFKA_TOPIC_PREFIX).consumed,
  intervalMs: 5_000,
  metrics,
  logger,
});
const consistency =
  config.CONSISTENCY_CHECK_INTERVAL_MS > 0
    ? startConsistencyJob({
        redis,
        pool,
        schemaVersions: invalidator.schemaVersions,
        intervalMs: config.CONSISTENCY_CHECK_INTERVAL_MS,
        maxKeys: config.CONSISTENCY_CHECK_MAX_KEYS,
        metrics,
        logger,
      })
    : null;
isConsuming = invalidator.isConsuming;
closeGracefully(app, [
  async () => consistency?.stop(),
  () => consumerLag.stop(),
  () => invalidator.stop(),
  () => pool.end(),
  () => redis.quit(),
  shutdownTracing,
]);

async function untilStarted<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      logger.warn({ err: (err as Error).message, attempt }, "kafka not reachable yet; retrying");
      await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
    }
  }
}
