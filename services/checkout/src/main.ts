import { checkoutSchema, loadConfig } from "@flashsale/config";
import { createDb } from "@flashsale/db";
import { closeGracefully } from "@flashsale/http";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { Redis } from "ioredis";
import { buildCheckoutApp } from "./app.ts";

const config = loadConfig(checkoutSchema);
const logger = createLogger("checkout", config.LOG_LEVEL);
const db = createDb({ url: config.DATABASE_URL, poolMax: config.DB_POOL_MAX, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS });
const redis = new Redis(config.REDIS_URL, {
  commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
  connectTimeout: 2_000,
  maxRetriesPerRequest: 1,
});
redis.on("error", (err) => logger.warn({ err: err.message }, "redis error"));

const app = await buildCheckoutApp({ db, redis, logger, metrics: createMetricsRegistry("checkout") });
closeGracefully(app, [() => redis.quit(), () => db.$disconnect()]);
await app.listen({ host: config.HOST, port: config.PORT });
