import { invalidateEntity, keyPrefix, L1Invalidations, publishWatermark, redisNowMs } from "@flashsale/cache";
import { createDb } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, PrivateRedis, pgPool, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";
import { freshnessTelemetry } from "../src/cache-telemetry.ts";
import { type CacheFreshness, startCacheFreshness } from "../src/deps.ts";

// The catalog wired as main.ts wires it (deps.ts startCacheFreshness: the watermark monitor, the
// products version probe on the real Postgres, negative caching), on a PRIVATE Redis (the watermark
// key is global) and the test stack's Postgres. No invalidator runs: its evictions are called by
// hand where the test needs one, and a stalled pipeline is a watermark nobody publishes.
const DELTA = 500;
const SCHEMA = 31;
const server = new PrivateRedis(20_400 + Math.floor(Math.random() * 400));
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 4, onQuery: () => queries++ });
let queries = 0;
let pool: pg.Pool;
let admin: Redis;
let redis: Redis;
let freshness: CacheFreshness;
let invalidations: L1Invalidations;
let app: FastifyInstance;
let publishing = false;
let publisherLoop: Promise<void> = Promise.resolve();

function startPublishing() {
  publishing = true;
  publisherLoop = (async () => {
    while (publishing) {
      await publishWatermark(admin, await redisNowMs(admin));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
}
async function stopPublishing() {
  publishing = false;
  await publisherLoop;
}

beforeAll(async () => {
  await server.start();
  pool = pgPool();
  admin = new Redis(server.url);
  redis = new Redis(server.url, { commandTimeout: 250, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on("error", () => {});
  await waitFor(async () => (redis.status === "ready" ? true : undefined), { timeoutMs: 5_000, what: "redis" });
  const logger = createLogger("freshness-test", "silent");
  const metrics = createMetricsRegistry("freshness-test");
  freshness = await startCacheFreshness({
    config: {
      CACHE_SCHEMA_VERSION: SCHEMA,
      CACHE_STALENESS_BOUND_MS: DELTA,
      CACHE_WATERMARK_POLL_MS: 50,
      CACHE_UNPUBLISHED_WATERMARK: "old",
      CACHE_NEGATIVE_TTL_MS: 5_000,
      CACHE_FENCE_SWEEP_MS: 0,
    },
    redis,
    db,
    logger,
  });
  freshnessTelemetry(metrics, freshness.monitor);
  invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
  await invalidations.start();
  app = await buildCatalogApp({
    db,
    redis,
    logger,
    metrics,
    adminToken: "freshness-test-admin-token",
    cache: {
      schemaVersion: SCHEMA,
      ttlSeconds: 3600,
      leaseMs: 2000,
      l1: { invalidations, ttlMs: 30_000, maxEntries: 1000 },
      ...freshness.cacheOptions,
    },
  });
  startPublishing();
  await waitFor(async () => (freshness.monitor.trusted && invalidations.isUp ? true : undefined), { timeoutMs: 5_000, what: "trust + L1" });
});
afterAll(async () => {
  await stopPublishing();
  await app.close();
  freshness.stop();
  await invalidations.stop();
  redis.disconnect();
  admin.disconnect();
  await server.kill();
  await pool.end();
  await db.$disconnect();
});

const get = async (id: number) => {
  const res = await app.inject({ method: "GET", url: `/products/${id}` });
  return {
    status: res.statusCode,
    cache: String(res.headers["x-cache"]),
    price: res.statusCode === 200 ? (res.json() as { listPriceCents: number }).listPriceCents : null,
  };
};

describe("the staleness bound on the catalog", () => {
  it("serves a raw-SQL price change within Δ + a poll while the pipeline is stalled, then hits again once it is back", async () => {
    const p = await insertProduct(pool, { sku: `FRESH-${runId()}`, listPriceCents: 1000, stock: 1 });
    expect((await get(p.id)).cache).toBe("MISS");
    await waitFor(async () => ((await get(p.id)).cache === "HIT-L1" ? true : undefined), { timeoutMs: 2_000, what: "L1 hit" });

    await stopPublishing(); // the pipeline stalls: no watermark, no eviction
    const changedAt = performance.now();
    await pool.query("UPDATE products SET list_price_cents = 1500 WHERE id = $1", [p.id]);
    let r = await get(p.id);
    while (r.price !== 1500 && performance.now() - changedAt < 3_000) {
      await new Promise((res) => setTimeout(res, 10));
      r = await get(p.id);
    }
    expect(r.price).toBe(1500);
    expect(performance.now() - changedAt).toBeLessThanOrEqual(DELTA + 50 + 300);
    // Unchanged from then on: confirmed by the version probe, at most one per key per Δ.
    await get(p.id);
    const before = queries;
    const later = await Promise.all(Array.from({ length: 50 }, () => get(p.id)));
    expect(later.every((x) => x.price === 1500 && x.cache === "REVALIDATED")).toBe(true);
    expect(queries - before).toBeLessThanOrEqual(2);
    const metrics = await app.inject({ method: "GET", url: "/metrics" });
    expect(metrics.body).toMatch(/catalog_cache_revalidating\{[^}]*\} 1\n/);
    const age = Number(/catalog_cache_watermark_age_seconds\{[^}]*\} ([0-9.]+)/.exec(metrics.body)?.[1]);
    expect(age).toBeGreaterThanOrEqual(DELTA / 1000);

    startPublishing();
    await waitFor(async () => ((await get(p.id)).cache.startsWith("HIT") ? true : undefined), { timeoutMs: 2_000, what: "hits again" });
  });
});

describe("negative caching", () => {
  it("answers 200 GETs of a missing id with at most a few Postgres reads, and an INSERT's eviction ends it", async () => {
    await waitFor(async () => (freshness.monitor.trusted ? true : undefined), { timeoutMs: 2_000, what: "trust" });
    const p = await insertProduct(pool, { sku: `NEG-${runId()}`, listPriceCents: 700, stock: 1 });
    await pool.query("DELETE FROM inventory WHERE product_id = $1", [p.id]);
    await pool.query("DELETE FROM products WHERE id = $1", [p.id]);
    const before = queries;
    const answers = [];
    for (let i = 0; i < 200; i++) answers.push(await get(p.id));
    expect(answers.every((a) => a.status === 404)).toBe(true);
    expect(queries - before).toBeLessThanOrEqual(3);
    expect(answers.filter((a) => a.cache === "HIT").length).toBeGreaterThanOrEqual(198);

    // Re-inserted by raw SQL; the invalidator's eviction of the id (as CDC delivers it) removes the marker.
    const { rows } = await pool.query<{ version: string }>(
      "INSERT INTO products (id, sku, name, list_price_cents) VALUES ($1, $2, $2, 800) RETURNING version",
      [p.id, `NEG2-${runId()}`],
    );
    await invalidateEntity(admin, {
      schemaVersion: SCHEMA,
      entity: "product",
      id: p.id,
      version: Number(rows[0]?.version),
      fenceTtlMs: 60_000,
    });
    expect(await get(p.id)).toMatchObject({ status: 200, price: 800 });
  });
});
