import { type AddressInfo, createServer } from "node:net";
import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { redisClient, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { buildCatalogApp } from "../src/app.ts";

export interface CatalogFixture {
  db: Db;
  redis: Redis;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * A catalog app on the test stack (TEST_ENV's Postgres and Redis) with admin token `adminToken`
 * and its own cache schema version. `name` labels its logger and metrics.
 */
export async function catalogFixture(name: string, adminToken: string): Promise<CatalogFixture> {
  const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  const redis = redisClient();
  const release = () => Promise.all([db.$disconnect(), redis.quit()]).then(() => {});
  const app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger(name, "silent"),
    metrics: createMetricsRegistry(name),
    adminToken,
    cache: { schemaVersion: 9_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
  }).catch(async (err: unknown) => {
    await release();
    throw err;
  });
  return {
    db,
    redis,
    app,
    close: async () => {
      await app.close();
      await release();
    },
  };
}

/** A loopback port free at the time of the call (bound, then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}
