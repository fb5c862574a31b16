import { createRedisClient, liveSchemaVersions, publishWatermark, redisNowMs } from "@flashsale/cache";
import { createDb } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, PrivateRedis, pgPool, runId, type ServiceProcess, spawnService, TEST_ENV, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";
import { freePort } from "./fixture.ts";

/**
 * Read-your-writes for admin writes (issue 10 item 4; docs/architecture.md#invalidation). No
 * invalidator runs here (a private Redis: CDC never evicts), so a fresh read-back can only come from
 * the admin path's own eviction. Catalog A (schema version S) takes the writes; catalog B runs schema
 * version S+1 and announces it: "every live schema version" is evicted, and "any catalog" reads fresh.
 * The watermark is published by the test (it makes no other writes), so the staleness bound trusts
 * the cache and does not revalidate.
 */
const ADMIN = "test-admin-token-0123456789";
const schema = 10_000 + Math.floor(Math.random() * 1_000);
let redisServer: PrivateRedis;
let pool: pg.Pool;
let watermark: NodeJS.Timeout;
let publisher: ReturnType<typeof createRedisClient>;
let a: ServiceProcess;
let b: ServiceProcess;

beforeAll(async () => {
  pool = pgPool();
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  publisher = createRedisClient({ url: redisServer.url, commandTimeoutMs: 1_000, failFast: false });
  const publish = async () => void (await publishWatermark(publisher, await redisNowMs(publisher)));
  await publish();
  watermark = setInterval(() => void publish().catch(() => {}), 100);
  const env = { REDIS_URL: redisServer.url, ADMIN_TOKEN: ADMIN };
  [a, b] = await Promise.all([
    spawnService("catalog", await freePort(), { ...env, CACHE_SCHEMA_VERSION: String(schema) }),
    spawnService("catalog", await freePort(), { ...env, CACHE_SCHEMA_VERSION: String(schema + 1) }),
  ]);
  // B's announcement of S+1 is in Redis before the first write (it announces at start).
  const probe = new Redis(redisServer.url);
  await waitFor(async () => ((await liveSchemaVersions(probe)).includes(schema + 1) ? true : undefined), {
    timeoutMs: 10_000,
    what: "announcement",
  });
  probe.disconnect();
});
afterAll(async () => {
  clearInterval(watermark);
  publisher?.disconnect();
  await Promise.all([a?.stop(), b?.stop()]);
  await redisServer.kill();
  await pool.end();
});

async function price(svc: ServiceProcess, id: number): Promise<{ priceCents: number; cache: string | null }> {
  const res = await fetch(`${svc.url}/products/${id}`);
  return { priceCents: ((await res.json()) as { priceCents: number }).priceCents, cache: res.headers.get("x-cache") };
}

describe("admin read-your-writes", () => {
  it("20 of 20 read-backs right after PUT /admin/products/:id/price are fresh, on the writing catalog and on one of the next schema version", async () => {
    const p = await insertProduct(pool, { sku: `RYW-${runId()}`, listPriceCents: 1000, stock: 1 });
    let fresh = 0;
    const stale: string[] = [];
    for (let i = 1; i <= 20; i++) {
      // Both catalogs have the current price cached (L1 and Redis) before each write.
      for (const svc of [a, b]) await price(svc, p.id);
      // A's own fill reaches its L1 on the following read (its tracking echoes its own SET).
      await waitFor(async () => ((await price(a, p.id)).cache === "HIT-L1" ? true : undefined), {
        timeoutMs: 2_000,
        intervalMs: 5,
        what: "an L1 hit on A",
      });
      const newPrice = 1000 + i;
      const put = await fetch(`${a.url}/admin/products/${p.id}/price`, {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ listPriceCents: newPrice }),
      });
      expect(put.status).toBe(200);
      const [fromA, fromB] = [await price(a, p.id), await price(b, p.id)];
      if (fromA.priceCents === newPrice && fromB.priceCents === newPrice) fresh++;
      else stale.push(`#${i}: A ${fromA.priceCents} (${fromA.cache}), B ${fromB.priceCents} (${fromB.cache}), want ${newPrice}`);
    }
    expect(stale).toEqual([]);
    expect(fresh).toBe(20);
  });

  it("20 of 20 reads right after DELETE /admin/products/:id answer 404, on both catalogs (the delete is evicted and fenced like a delete event)", async () => {
    const stale: string[] = [];
    for (let i = 1; i <= 20; i++) {
      const p = await insertProduct(pool, { sku: `RYW-DEL-${runId()}-${i}`, listPriceCents: 1000, stock: 0 });
      for (const svc of [a, b]) await price(svc, p.id);
      await waitFor(async () => ((await price(a, p.id)).cache === "HIT-L1" ? true : undefined), {
        timeoutMs: 2_000,
        intervalMs: 5,
        what: "an L1 hit on A",
      });
      const del = await fetch(`${a.url}/admin/products/${p.id}`, { method: "DELETE", headers: { authorization: `Bearer ${ADMIN}` } });
      expect(del.status).toBe(200);
      const [fromA, fromB] = [await fetch(`${a.url}/products/${p.id}`), await fetch(`${b.url}/products/${p.id}`)];
      if (fromA.status !== 404 || fromB.status !== 404) {
        stale.push(`#${i}: A ${fromA.status} (${fromA.headers.get("x-cache")}), B ${fromB.status} (${fromB.headers.get("x-cache")})`);
      }
    }
    expect(stale).toEqual([]);
  });

  it("a sale and an import are read back fresh too", async () => {
    const sku = `RYW-${runId()}`;
    const p = await insertProduct(pool, { sku, listPriceCents: 2000, stock: 1 });
    for (const svc of [a, b]) await price(svc, p.id);
    const sale = await fetch(`${a.url}/admin/sales`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({
        productIds: [p.id],
        salePriceCents: 1500,
        startsAt: new Date(Date.now() - 60_000).toISOString(),
        endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    expect(sale.status).toBe(201);
    expect((await price(b, p.id)).priceCents).toBe(1500);
    const imported = await fetch(`${a.url}/admin/import`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "text/csv" },
      body: `sku,listPriceCents\n${sku},2500\n`,
    });
    expect(imported.status).toBe(200);
    const after = await price(b, p.id);
    expect(after.priceCents).toBe(1500); // still on sale...
    const res = await fetch(`${b.url}/products/${p.id}`);
    expect(((await res.json()) as { listPriceCents: number }).listPriceCents).toBe(2500); // ...at the new list price
  });

  it("a failed eviction never fails the write: logged, counted, the write answered", async () => {
    const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
    const dead = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on("error", () => {});
    const app = await buildCatalogApp({
      db,
      redis: dead,
      logger: createLogger("ryw-test", "silent"),
      metrics: createMetricsRegistry("ryw-test"),
      adminToken: ADMIN,
      cache: { schemaVersion: schema, ttlSeconds: 3600, leaseMs: 2000 },
      writeEviction: { fenceTtlMs: 60_000, timeoutMs: 300 },
    });
    try {
      const p = await insertProduct(pool, { sku: `RYW-${runId()}`, listPriceCents: 10, stock: 1 });
      const started = performance.now();
      const put = await app.inject({
        method: "PUT",
        url: `/admin/products/${p.id}/price`,
        headers: { authorization: `Bearer ${ADMIN}` },
        payload: { listPriceCents: 11 },
      });
      expect(put.statusCode).toBe(200);
      expect(put.json().listPriceCents).toBe(11);
      expect(performance.now() - started).toBeLessThan(2_000);
      const metrics = (await app.inject({ url: "/metrics" })).body;
      expect(metrics).toMatch(/catalog_write_evictions_total\{outcome="failed"[^}]*\} 1/);
    } finally {
      await app.close();
      await db.$disconnect();
    }
  });
});
