import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";

/**
 * POST /admin/import on the real Postgres: a price is exactly a non-negative integer. A CSV cell
 * went through Number(), so an empty cell imported as 0 (the product became free, and checkout
 * charges what Postgres says), "0x10" as 16 and "1e3" as 1000; a JSON line's "77" was coerced.
 */
const run = runId();
const TOKEN = "import-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let pool: pg.Pool;
let redis: Redis;
let db: Db;
let app: FastifyInstance;

beforeAll(async () => {
  pool = pgPool();
  redis = redisClient();
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("catalog-import-test", "silent"),
    metrics: createMetricsRegistry("catalog-import-test"),
    adminToken: TOKEN,
    cache: { schemaVersion: 9_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
  });
});
afterAll(async () => {
  await app?.close();
  await db?.$disconnect();
  await Promise.all([pool?.end(), redis?.quit()]);
});

const listPrice = async (id: number) =>
  (await pool.query<{ list_price_cents: number }>("SELECT list_price_cents FROM products WHERE id = $1", [id])).rows[0]?.list_price_cents;

describe("price import is strict", () => {
  it.each([
    ["an empty CSV cell", "text/csv", (sku: string) => `sku,listPriceCents\n${sku},\n`],
    ["a hexadecimal CSV cell", "text/csv", (sku: string) => `sku,listPriceCents\n${sku},0x10\n`],
    ["an exponent in a CSV cell", "text/csv", (sku: string) => `sku,listPriceCents\n${sku},1e3\n`],
    ["a string price in a JSON line", "application/x-ndjson", (sku: string) => `{"sku":"${sku}","listPriceCents":"77"}\n`],
    ["an empty string in a JSON line", "application/x-ndjson", (sku: string) => `{"sku":"${sku}","listPriceCents":""}\n`],
  ])("refuses %s with 400 INVALID_IMPORT and changes nothing", async (name, type, body) => {
    const p = await insertProduct(pool, { sku: `IMP-${run}-${name.replace(/\W+/g, "-")}`, listPriceCents: 4_999, stock: 1 });
    const res = await app.inject({
      method: "POST",
      url: "/admin/import",
      headers: { ...admin, "content-type": type },
      payload: body(p.sku),
    });
    expect([res.statusCode, res.json().error, res.json().line]).toEqual([400, "INVALID_IMPORT", type === "text/csv" ? 2 : 1]);
    expect(await listPrice(p.id)).toBe(4_999);
  });

  it("still imports plain digits, and reads an upper-case TEXT/CSV as CSV", async () => {
    const p = await insertProduct(pool, { sku: `IMP-${run}-ok`, listPriceCents: 4_999, stock: 1 });
    const res = await app.inject({
      method: "POST",
      url: "/admin/import",
      headers: { ...admin, "content-type": "TEXT/CSV" },
      payload: `sku,listPriceCents\n${p.sku}, 1234 \n`,
    });
    expect([res.statusCode, res.json().updated]).toEqual([200, 1]);
    expect(await listPrice(p.id)).toBe(1_234);
  });
});
