import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, insertProducts, pgPool, redisClient, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";

const ADMIN = "test-admin-token-0123456789";
const auth = { authorization: `Bearer ${ADMIN}` };
const run = runId();
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let app: FastifyInstance;

async function build(r: Redis): Promise<FastifyInstance> {
  return buildCatalogApp({
    db,
    redis: r,
    logger: createLogger("catalog-test", "silent"),
    metrics: createMetricsRegistry("catalog-test"),
    adminToken: ADMIN,
    // A schema version of its own: no invalidator runs for it in this suite.
    cache: { schemaVersion: 7_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
  });
}

beforeAll(async () => {
  pool = pgPool();
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 5 });
  redis = redisClient();
  app = await build(redis);
});
afterAll(async () => {
  await app.close();
  await Promise.all([pool.end(), db.$disconnect(), redis.quit()]);
});

/** A product's version as Postgres has it (versions come from one sequence, not 1, 2, ...). */
async function dbVersion(id: number): Promise<number> {
  const { rows } = await pool.query<{ version: string }>("SELECT version FROM products WHERE id = $1", [id]);
  return Number(rows[0]?.version);
}

describe("GET /products/:id", () => {
  it("misses, then hits, with X-Cache, Age and ETag", async () => {
    const p = await insertProduct(pool, { sku: `CAT-${run}-1`, listPriceCents: 1234, stock: 5 });
    const first = await app.inject({ url: `/products/${p.id}` });
    expect(first.statusCode).toBe(200);
    expect(first.headers["x-cache"]).toBe("MISS");
    expect(first.json()).toMatchObject({
      id: p.id,
      sku: `CAT-${run}-1`,
      priceCents: 1234,
      listPriceCents: 1234,
      sale: null,
      version: await dbVersion(p.id),
      validUntil: null,
    });
    const etag = `"${await dbVersion(p.id)}"`;
    const second = await app.inject({ url: `/products/${p.id}` });
    expect(second.headers["x-cache"]).toBe("HIT");
    expect(second.headers.etag).toBe(etag);
    expect(Number(second.headers.age)).toBeGreaterThanOrEqual(0);
    const notModified = await app.inject({ url: `/products/${p.id}`, headers: { "if-none-match": etag } });
    expect(notModified.statusCode).toBe(304);
  });

  it("answers 404 NOT_FOUND and 400 for malformed ids", async () => {
    const missing = await app.inject({ url: "/products/999999999999" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toBe("NOT_FOUND");
    for (const bad of ["abc", "0", "-1", "1.5", "99999999999999999999"]) {
      const res = await app.inject({ url: `/products/${bad}` });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error).toBe("VALIDATION_FAILED");
    }
  });

  it("serves the sale price until endsAt and the list price from then on, with no write", async () => {
    const endsAt = new Date(Date.now() + 1_500);
    const p = await insertProduct(pool, {
      sku: `CAT-${run}-sale`,
      listPriceCents: 1000,
      stock: 1,
      sale: { priceCents: 600, startsAt: new Date(Date.now() - 60_000), endsAt },
    });
    const during = await app.inject({ url: `/products/${p.id}` });
    expect(during.json()).toMatchObject({ priceCents: 600, validUntil: endsAt.toISOString() });
    const saleEtag = String(during.headers.etag);
    expect((await app.inject({ url: `/products/${p.id}` })).headers["x-cache"]).toBe("HIT");
    const after = await waitFor(
      async () => {
        const res = await app.inject({ url: `/products/${p.id}` });
        return res.json().priceCents === 1000 ? res : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 20, what: "list price after the sale" },
    );
    // Never the sale price at or after endsAt: the TTL was capped at the boundary.
    expect(Date.now()).toBeGreaterThanOrEqual(endsAt.getTime());
    expect(after.json().validUntil).toBeNull();
    // A client revalidating the sale-time answer must not be told it is still current (no write
    // happened, so the version alone has not changed).
    const revalidated = await app.inject({ url: `/products/${p.id}`, headers: { "if-none-match": saleEtag } });
    expect(revalidated.statusCode).toBe(200);
    expect(revalidated.json().priceCents).toBe(1000);
  });

  it("degrades to Postgres with X-Cache: BYPASS when Redis is unreachable", async () => {
    const dead = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on("error", () => {});
    const degraded = await build(dead);
    const p = await insertProduct(pool, { sku: `CAT-${run}-bypass`, listPriceCents: 77, stock: 1 });
    const res = await degraded.inject({ url: `/products/${p.id}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-cache"]).toBe("BYPASS");
    expect(res.json().priceCents).toBe(77);
    await degraded.close();
  });
});

describe("GET /products", () => {
  it("pages with a keyset cursor", async () => {
    const page1 = await app.inject({ url: "/products?limit=2" });
    expect(page1.statusCode).toBe(200);
    const body = page1.json();
    expect(body.items).toHaveLength(2);
    const page2 = (await app.inject({ url: `/products?limit=2&cursor=${body.nextCursor}` })).json();
    expect(page2.items[0].id).toBeGreaterThan(body.items[1].id);
    expect((await app.inject({ url: "/products?limit=1000" })).statusCode).toBe(400);
  });
});

describe("admin", () => {
  it("requires the bearer token", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: ADMIN }]) {
      const res = await app.inject({ method: "PUT", url: "/admin/products/1/price", headers, payload: { listPriceCents: 1 } });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe("UNAUTHORIZED");
    }
  });

  it("updates a list price, bumping the version", async () => {
    const p = await insertProduct(pool, { sku: `CAT-${run}-price`, listPriceCents: 500, stock: 1 });
    const before = await dbVersion(p.id);
    const res = await app.inject({ method: "PUT", url: `/admin/products/${p.id}/price`, headers: auth, payload: { listPriceCents: 450 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ priceCents: 450, listPriceCents: 450, version: await dbVersion(p.id) });
    expect(res.json().version).toBeGreaterThan(before);
    const bad = await app.inject({ method: "PUT", url: `/admin/products/${p.id}/price`, headers: auth, payload: { listPriceCents: -5 } });
    expect(bad.statusCode).toBe(400);
    const missing = await app.inject({
      method: "PUT",
      url: "/admin/products/999999999999/price",
      headers: auth,
      payload: { listPriceCents: 5 },
    });
    expect(missing.statusCode).toBe(404);
  });

  it("creates products and refuses a duplicate SKU", async () => {
    const payload = { sku: `CAT-${run}-new`, name: "New", listPriceCents: 999, stock: 3 };
    const created = await app.inject({ method: "POST", url: "/admin/products", headers: auth, payload });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ sku: payload.sku, priceCents: 999, currency: "USD" });
    const nul = await app.inject({
      method: "POST",
      url: "/admin/products",
      headers: auth,
      payload: { ...payload, sku: `${payload.sku}-nul`, name: "a\u0000b" },
    });
    expect([nul.statusCode, nul.json().error]).toEqual([400, "VALIDATION_FAILED"]); // found by the fuzzer: was a 500
    const dup = await app.inject({ method: "POST", url: "/admin/products", headers: auth, payload });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error).toBe("SKU_EXISTS");
  });

  it("creates a sale by percentage, all or nothing", async () => {
    const p = await insertProduct(pool, { sku: `CAT-${run}-pct`, listPriceCents: 1999, stock: 1 });
    const window = { startsAt: new Date(Date.now() - 1000).toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString() };
    const unknown = await app.inject({
      method: "POST",
      url: "/admin/sales",
      headers: auth,
      payload: { productIds: [p.id, 999999999999], percentOff: 50, ...window },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().productIds).toEqual([999999999999]);
    const ok = await app.inject({
      method: "POST",
      url: "/admin/sales",
      headers: auth,
      payload: { productIds: [p.id], percentOff: 25, ...window },
    });
    expect(ok.statusCode).toBe(201);
    const { rows } = await pool.query("SELECT sale_price_cents FROM products WHERE id = $1", [p.id]);
    expect(rows[0].sale_price_cents).toBe(1499);
    const inverted = await app.inject({
      method: "POST",
      url: "/admin/sales",
      headers: auth,
      payload: { productIds: [p.id], percentOff: 5, startsAt: window.endsAt, endsAt: window.startsAt },
    });
    expect(inverted.json().error).toBe("INVALID_SALE_WINDOW");
  });

  it("imports prices from CSV in one statement, reporting unknown SKUs", async () => {
    const rows = await insertProducts(pool, [
      { sku: `CAT-${run}-i1`, listPriceCents: 100, stock: 1 },
      { sku: `CAT-${run}-i2`, listPriceCents: 200, stock: 1 },
    ]);
    const versionsBefore = [await dbVersion(rows[0]?.id ?? 0), await dbVersion(rows[1]?.id ?? 0)];
    const csv = `sku,listPriceCents\nCAT-${run}-i1,111\nCAT-${run}-i2,200\nCAT-${run}-nope,5\n`;
    const res = await app.inject({ method: "POST", url: "/admin/import", headers: { ...auth, "content-type": "text/csv" }, payload: csv });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 3, updated: 1, unchanged: 1, unknownSkus: [`CAT-${run}-nope`] });
    const { rows: after } = await pool.query("SELECT sku, list_price_cents, version FROM products WHERE id = ANY($1) ORDER BY sku", [
      rows.map((r) => r.id),
    ]);
    // Versions come from one sequence (docs/architecture.md "Invalidation"): changed = moved, unchanged = kept.
    expect(after.map((r) => r.list_price_cents)).toEqual([111, 200]);
    expect(Number(after[0].version)).toBeGreaterThan(versionsBefore[0] ?? 0);
    expect(Number(after[1].version)).toBe(versionsBefore[1]);
    const bad = await app.inject({
      method: "POST",
      url: "/admin/import",
      headers: { ...auth, "content-type": "text/csv" },
      payload: "sku,listPriceCents\nX,abc\n",
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe("INVALID_IMPORT");
    const wrongType = await app.inject({
      method: "POST",
      url: "/admin/import",
      headers: { ...auth, "content-type": "application/xml" },
      payload: "<x/>",
    });
    expect(wrongType.statusCode).toBe(415);
  });
});

describe("operations", () => {
  it("reports readiness, metrics and the OpenAPI document", async () => {
    expect((await app.inject({ url: "/readyz" })).json()).toMatchObject({ status: "ready", checks: { postgres: "ok", redis: "ok" } });
    const metrics = await app.inject({ url: "/metrics" });
    expect(metrics.body).toMatch(/catalog_cache_events_total\{event="hit"/);
    const doc = (await app.inject({ url: "/docs/json" })).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/products/{id}", "/admin/import"]));
  });
});
