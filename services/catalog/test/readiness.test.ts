import { createRedisClient } from "@flashsale/cache";
import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";
import { freePort } from "./fixture.ts";

// The catalog's /readyz is what a load balancer (deploy/k8s readinessProbe) acts on: it must stay
// ready while the catalog can answer from the cache or from Postgres, and only then.

const run = runId();
const schemaVersion = 9_000 + Math.floor(Math.random() * 1000);
let pool: pg.Pool;
const closers: Array<() => Promise<unknown>> = [];

async function build(db: Db, redis: Redis): Promise<FastifyInstance> {
  const app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("catalog-readiness-test", "silent"),
    metrics: createMetricsRegistry("catalog-readiness-test"),
    adminToken: "test-admin-token-0123456789",
    cache: { schemaVersion, ttlSeconds: 3600, leaseMs: 2000 },
  });
  closers.push(() => app.close());
  return app;
}

function goodDb(): Db {
  const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  closers.push(() => db.$disconnect());
  return db;
}
async function deadDb(): Promise<Db> {
  const url = new URL(TEST_ENV.databaseUrl);
  url.port = String(await freePort());
  const db = createDb({ url: url.toString(), poolMax: 2 });
  closers.push(() => db.$disconnect());
  return db;
}
function goodRedis(): Redis {
  const r = redisClient();
  closers.push(() => r.quit());
  return r as Redis;
}
async function deadRedis(): Promise<Redis> {
  // As main.ts builds it (fail fast: no offline queue), pointed at a port nobody listens on.
  const r = createRedisClient({ url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 250, failFast: true }) as Redis;
  r.on("error", () => {});
  closers.push(async () => r.disconnect());
  return r;
}

beforeAll(() => {
  pool = pgPool();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await pool.end();
});

describe("catalog /readyz", () => {
  it("is ready with both dependencies", async () => {
    const res = await (await build(goodDb(), goodRedis())).inject({ url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: "ready", checks: { postgres: "ok", redis: "ok", cache_or_postgres: "ok" } });
  });

  it("stays ready (degraded) while Postgres is down and serves what is cached", async () => {
    const p = await insertProduct(pool, { sku: `READY-${run}`, listPriceCents: 4321, stock: 1 });
    const redis = goodRedis();
    // Fill the Redis tier through a catalog that can read Postgres ...
    expect((await (await build(goodDb(), redis)).inject({ url: `/products/${p.id}` })).statusCode).toBe(200);
    // ... then a catalog whose Postgres is unreachable: ready, and the cached product is served.
    const app = await build(await deadDb(), redis);
    const ready = await app.inject({ url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().status).toBe("degraded");
    expect(ready.json().checks.postgres).not.toBe("ok");
    const res = await app.inject({ url: `/products/${p.id}` });
    expect(res.statusCode).toBe(200);
    expect(res.json().priceCents).toBe(4321);
  });

  it("stays ready (degraded) while Redis is down: reads go to Postgres", async () => {
    const res = await (await build(goodDb(), await deadRedis())).inject({ url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: "degraded", checks: { postgres: "ok", cache_or_postgres: "ok" } });
  });

  it("is not ready when it can answer from neither", async () => {
    const res = await (await build(await deadDb(), await deadRedis())).inject({ url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: "not_ready", checks: { cache_or_postgres: "neither Redis nor Postgres answers" } });
  });
});
