import { createRedisClient, publishWatermark, redisNowMs } from "@flashsale/cache";
import { productKeys } from "@flashsale/product-cache";
import { insertProducts, PrivateRedis, pgPool, runId, type ServiceProcess, spawnService, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./fixture.ts";

/**
 * Prioritized warm-up after a cold start (docs/architecture.md#warm-up), on a private Redis the
 * test flushes: the 10 hottest products (read 5 times each) are back in Redis within ~1 s of the
 * flush, before any client asks for them again, and the 30 colder ones (read once) are not (top 10).
 */
const schema = 12_000 + Math.floor(Math.random() * 1_000);
let redisServer: PrivateRedis;
let redis: Redis;
let publisher: ReturnType<typeof createRedisClient>;
let watermark: NodeJS.Timeout;
let pool: pg.Pool;
let catalog: ServiceProcess;

beforeAll(async () => {
  pool = pgPool();
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  redis = new Redis(redisServer.url);
  publisher = createRedisClient({ url: redisServer.url, commandTimeoutMs: 1_000, failFast: false });
  const publish = async () => void (await publishWatermark(publisher, await redisNowMs(publisher)));
  await publish();
  watermark = setInterval(() => void publish().catch(() => {}), 100);
  catalog = await spawnService("catalog", await freePort(), {
    REDIS_URL: redisServer.url,
    CACHE_SCHEMA_VERSION: String(schema),
    CATALOG_WARMUP_TOP: "10",
    CATALOG_WARMUP_RATE: process.env.WARMUP_TEST_RATE ?? "200",
  });
});
afterAll(async () => {
  clearInterval(watermark);
  await catalog?.stop();
  publisher?.disconnect();
  redis?.disconnect();
  await redisServer.kill();
  await pool.end();
});

describe("warm-up after a Redis flush", () => {
  it("fills the hottest products first, within the rate, before clients ask again", async () => {
    const tag = runId();
    const products = await insertProducts(
      pool,
      Array.from({ length: 40 }, (_, i) => ({ sku: `WARM-${tag}-${i}`, listPriceCents: 100 + i, stock: 1 })),
    );
    const hot = products.slice(0, 10).map((p) => p.id);
    const cold = products.slice(10).map((p) => p.id);
    for (let round = 0; round < 5; round++) for (const id of hot) await fetch(`${catalog.url}/products/${id}`);
    for (const id of cold) await fetch(`${catalog.url}/products/${id}`);
    // The counts reach the shared sorted set within a second.
    await waitFor(async () => ((await redis.zcard("catalog:demand:{product}")) >= 40 ? true : undefined), {
      timeoutMs: 5_000,
      what: "demand flushed",
    });

    await redis.flushall();
    const cached = async (ids: number[]) =>
      (await Promise.all(ids.map((id) => redis.exists(productKeys(schema, id).value)))).filter(Boolean).length;
    // No client reads after the flush: whatever is cached now, the warm-up put there.
    await waitFor(async () => ((await cached(hot)) === hot.length ? true : undefined), {
      timeoutMs: 5_000,
      intervalMs: 50,
      what: "the hot products warmed",
    });
    expect(await cached(cold)).toBe(0);
  });

  it("counts only products that exist: a flood of unknown ids does not enter the demand set", async () => {
    const [known] = await insertProducts(pool, [{ sku: `WARM-${runId()}-known`, listPriceCents: 100, stock: 1 }]);
    if (!known) throw new Error("no product inserted");
    const unknown = Array.from({ length: 20 }, (_, i) => 900_000_000_000 + Math.floor(Math.random() * 1e9) + i);
    for (let round = 0; round < 3; round++) {
      for (const id of unknown) expect((await fetch(`${catalog.url}/products/${id}`)).status).toBe(404);
    }
    await fetch(`${catalog.url}/products/${known.id}`);
    await waitFor(async () => ((await redis.zscore("catalog:demand:{product}", String(known.id))) !== null ? true : undefined), {
      timeoutMs: 5_000,
      what: "the known product's demand flushed",
    });
    const scores = await Promise.all(unknown.map((id) => redis.zscore("catalog:demand:{product}", String(id))));
    expect(scores.filter((s) => s !== null)).toEqual([]);
  });
});
