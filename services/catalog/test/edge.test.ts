import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";
import { freePort } from "./fixture.ts";

/** The catalog's HTTP edge on the real Postgres and Redis (issue 17): honest codes, strict bodies, product deletion. */
const run = runId();
const schemaVersion = 8_000 + Math.floor(Math.random() * 1000);
const TOKEN = "edge-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let pool: pg.Pool;
let redis: Redis;
const closers: Array<() => Promise<unknown>> = [];

async function build(db: Db): Promise<FastifyInstance> {
  const app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("catalog-edge-test", "silent"),
    metrics: createMetricsRegistry("catalog-edge-test"),
    adminToken: TOKEN,
    cache: { schemaVersion, ttlSeconds: 3600, leaseMs: 2000 },
  });
  closers.push(() => app.close());
  return app;
}
function db(url = TEST_ENV.databaseUrl): Db {
  const d = createDb({ url, poolMax: 2, connectTimeoutMs: 1_000 });
  closers.push(() => d.$disconnect());
  return d;
}

beforeAll(() => {
  pool = pgPool();
  redis = redisClient();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await Promise.all([pool.end(), redis.quit()]);
});

describe("catalog edge", () => {
  it("an uncached read with Postgres unreachable is 503 DB_UNAVAILABLE (a real outage, classified by packages/db)", async () => {
    const url = new URL(TEST_ENV.databaseUrl);
    url.port = String(await freePort());
    const app = await build(db(url.toString()));
    const res = await app.inject({ url: "/products/987654321012" });
    expect([res.statusCode, res.json().error]).toEqual([503, "DB_UNAVAILABLE"]);
    expect(res.headers["retry-after"]).toBe("1");
  });

  it("a sale instant raw SQL set beyond a JS date ('infinity', '-infinity', year 20000) is served clamped, not a 500", async () => {
    const app = await build(db());
    const ids: number[] = [];
    for (const [i, [starts, ends]] of [
      ["-infinity", "infinity"],
      ["2020-01-01", "20000-01-01"],
    ].entries()) {
      const p = await insertProduct(pool, { sku: `CEDGE-${run}-inf-${i}`, listPriceCents: 900, stock: 1 });
      await pool.query(`UPDATE products SET sale_price_cents = 100, sale_starts_at = $2, sale_ends_at = $3 WHERE id = $1`, [
        p.id,
        starts,
        ends,
      ]);
      ids.push(p.id);
    }
    for (const id of ids) {
      for (let read = 0; read < 2; read++) {
        const res = await app.inject({ url: `/products/${id}` });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toMatchObject({
          priceCents: 100,
          sale: { endsAt: "9999-12-31T23:59:59.999Z" },
          validUntil: "9999-12-31T23:59:59.999Z",
        });
      }
    }
    expect((await app.inject({ url: `/products/${ids[0]}` })).json().sale.startsAt).toBe("0001-01-01T00:00:00.000Z");
    const page = await app.inject({ url: `/products?cursor=${(ids[0] as number) - 1}&limit=2` });
    expect(page.statusCode).toBe(200);
  });

  it("admin bodies are strict: no coercion, unknown properties named", async () => {
    const app = await build(db());
    const p = await insertProduct(pool, { sku: `CEDGE-${run}-strict`, listPriceCents: 500, stock: 1 });
    const url = `/admin/products/${p.id}/price`;
    for (const listPriceCents of ["700", true, [700]]) {
      const res = await app.inject({ method: "PUT", url, headers: admin, payload: { listPriceCents } });
      expect([res.statusCode, res.json().error], JSON.stringify(listPriceCents)).toEqual([400, "VALIDATION_FAILED"]);
    }
    const unknown = await app.inject({ method: "PUT", url, headers: admin, payload: { listPriceCents: 700, salePriceCents: 1 } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ error: "UNKNOWN_PROPERTY", property: "salePriceCents" });
    const { rows } = await pool.query("SELECT list_price_cents FROM products WHERE id = $1", [p.id]);
    expect(rows[0].list_price_cents).toBe(500);
    // Query strings may coerce ("5" is a limit) but may not carry unknown properties either.
    expect((await app.inject({ url: "/products?limit=5" })).statusCode).toBe(200);
    const q = await app.inject({ url: "/products?limit=5&sort=price" });
    expect(q.statusCode).toBe(400);
    expect(q.json()).toMatchObject({ error: "UNKNOWN_PROPERTY", property: "sort" });
  });

  it("DELETE /admin/products/:id removes a product sitting in carts (noted there), refuses one in orders", async () => {
    const app = await build(db());
    const p = await insertProduct(pool, { sku: `CEDGE-${run}-del`, listPriceCents: 500, stock: 5 });
    const carts = await pool.query<{ id: string }>("INSERT INTO carts (user_id) VALUES (NULL), (NULL) RETURNING id::text");
    for (const c of carts.rows) {
      await pool.query(
        "INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen) VALUES ($1, $2, 1, 500, 1)",
        [c.id, p.id],
      );
    }
    const res = await app.inject({ method: "DELETE", url: `/admin/products/${p.id}`, headers: admin });
    expect([res.statusCode, res.json()]).toEqual([200, { id: p.id, cartLinesRemoved: 2 }]);
    const notes = await pool.query("SELECT count(*)::int AS n FROM cart_unavailable_items WHERE product_id = $1", [p.id]);
    expect(notes.rows[0].n).toBe(2);
    expect((await app.inject({ method: "DELETE", url: `/admin/products/${p.id}`, headers: admin })).statusCode).toBe(404);

    const ordered = await insertProduct(pool, { sku: `CEDGE-${run}-ordered`, listPriceCents: 500, stock: 5 });
    await pool.query(
      `WITH o AS (INSERT INTO orders (cart_id, total_cents) VALUES (gen_random_uuid(), 500) RETURNING id)
       INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) SELECT id, $1, 1, 500 FROM o`,
      [ordered.id],
    );
    const refused = await app.inject({ method: "DELETE", url: `/admin/products/${ordered.id}`, headers: admin });
    expect([refused.statusCode, refused.json().error]).toEqual([409, "PRODUCT_IN_ORDERS"]);
  });
});
