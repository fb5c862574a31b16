import { insertProduct, pgPool, runId } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CatalogFixture, catalogFixture } from "./fixture.ts";

/**
 * POST /admin/import on the real Postgres: a price is exactly a non-negative integer. A CSV cell
 * went through Number(), so an empty cell imported as 0 (the product became free, and checkout
 * charges what Postgres says), "0x10" as 16 and "1e3" as 1000; a JSON line's "77" was coerced.
 */
const run = runId();
const TOKEN = "import-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let fx: CatalogFixture;
let pool: pg.Pool;
let app: FastifyInstance;

beforeAll(async () => {
  pool = pgPool();
  fx = await catalogFixture("catalog-import-test", TOKEN);
  app = fx.app;
});
afterAll(async () => {
  await fx?.close();
  await pool?.end();
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
