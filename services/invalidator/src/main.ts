import { invalidatorSchema, loadConfig } from "@flashsale/config";
import { closeGracefully } from "@flashsale/http";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { Redis } from "ioredis";
import { buildInvalidatorApp } from "./app.ts";
import { startInvalidator } from "./consumer.ts";
import { createKafka } from "./kafka.ts";

const config = loadConfig(invalidatorSchema);
const logger = createLogger("invalidator", config.LOG_LEVEL);
const metrics = createMetricsRegistry("invalidator");
// Unlike the catalog, the invalidator WANTS to wait for Redis: an eviction is retried, never dropped.
const redis = new Redis(config.REDIS_URL, { commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS, connectTimeout: 2_000 });
redis.on("error", (err) => logger.warn({ err: err.message }, "redis error"));

const invalidator = await startInvalidator({
  kafka: createKafka(config.KAFKA_BROKERS, "flashsale-invalidator", logger),
  redis,
  logger,
  metrics,
  groupId: config.KAFKA_GROUP_ID,
  topicPrefix: config.KAFKA_TOPIC_PREFIX,
  schemaVersion: config.CACHE_SCHEMA_VERSION,
  fenceTtlMs: config.FENCE_TTL_SECONDS * 1000,
});
const app = await buildInvalidatorApp({ redis, logger, metrics, isConsuming: invalidator.isConsuming });
closeGracefully(app, [() => invalidator.stop(), () => redis.quit()]);
await app.listen({ host: config.HOST, port: config.PORT });
