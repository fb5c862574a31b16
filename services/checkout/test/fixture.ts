import { StockGate } from "@flashsale/cache";
import { createDb, type Db } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { pgPool, redisClient, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { buildCheckoutApp } from "../src/app.ts";

export interface CheckoutFixture {
  pool: pg.Pool;
  db: Db;
  redis: Redis;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * A checkout app on the test stack (TEST_ENV's Postgres and Redis), with its own cache schema
 * version, 4 transaction slots and a rate limit no test reaches. `name` labels its logger and
 * metrics.
 */
export async function checkoutFixture(name: string): Promise<CheckoutFixture> {
  const pool = pgPool();
  const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 4 });
  const redis = redisClient();
  const release = () => Promise.all([pool.end(), db.$disconnect(), redis.quit()]).then(() => {});
  const app = await buildCheckoutApp({
    db,
    redis,
    logger: createLogger(name, "silent"),
    metrics: createMetricsRegistry(name),
    productCache: createProductCache({ redis, schemaVersion: 5_000 + Math.floor(Math.random() * 1_000), ttlSeconds: 3600, leaseMs: 2000 }),
    gate: new StockGate(redis),
    transactions: { limit: 4, queue: 100 },
    rateLimit: { max: 1_000_000, windowMs: 10_000 },
  }).catch(async (err: unknown) => {
    await release();
    throw err;
  });
  return {
    pool,
    db,
    redis,
    app,
    close: async () => {
      await app.close();
      await release();
    },
  };
}
