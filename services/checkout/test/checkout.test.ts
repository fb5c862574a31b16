import { invalidateEntity, StockGate } from "@flashsale/cache";
import { auditOrders } from "@flashsale/consistency";
import { createDb, type Db, importListPrices } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildCheckoutOptions, buildCheckoutApp } from "../src/app.ts";

const run = runId();
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let app: FastifyInstance;

const SCHEMA = 4_000 + Math.floor(Math.random() * 1_000); // product-cache key space of this suite
const extraApps: FastifyInstance[] = [];

async function build(overrides: Partial<BuildCheckoutOptions> = {}): Promise<FastifyInstance> {
  return buildCheckoutApp({
    db,
    redis,
    logger: createLogger("checkout-test", "silent"),
    metrics: createMetricsRegistry("checkout-test"),
    productCache: createProductCache({ redis, schemaVersion: SCHEMA, ttlSeconds: 3600, leaseMs: 2000 }),
    gate: new StockGate(redis),
    transactions: { limit: 10, queue: 10_000 },
    rateLimit: { max: 1_000_000, windowMs: 10_000 },
    ...overrides,
  });
}

beforeAll(async () => {
  pool = pgPool();
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 10 });
  redis = redisClient();
  app = await build();
});
afterAll(async () => {
  await Promise.all([app, ...extraApps].map((a) => a.close()));
  await Promise.all([pool.end(), db.$disconnect(), redis.quit()]);
});

async function cartWith(productId: number, quantity: number): Promise<string> {
  const cart = await app.inject({ method: "POST", url: "/carts", payload: {} });
  expect(cart.statusCode).toBe(201);
  const id = cart.json().id as string;
  const add = await app.inject({ method: "POST", url: `/carts/${id}/items`, payload: { productId, quantity } });
  expect(add.statusCode).toBe(201);
  return id;
}

const checkout = (cartId: string, key = `key-${runId()}-${Math.random()}`) =>
  app.inject({ method: "POST", url: `/carts/${cartId}/checkout`, headers: { "idempotency-key": key } });

/** Checkouts that reached Postgres (the sum of group commit's batch sizes, from the app's /metrics). */
async function checkoutsInBatches(): Promise<number> {
  const text = (await app.inject({ url: "/metrics" })).body;
  return Number(/^checkout_batch_size_sum(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

async function dbState(productId: number) {
  const stock = await pool.query("SELECT available FROM inventory WHERE product_id = $1", [productId]);
  const orders = await pool.query(
    "SELECT count(*)::int AS n, coalesce(sum(quantity), 0)::int AS units FROM order_items WHERE product_id = $1",
    [productId],
  );
  return { available: stock.rows[0].available as number, orders: orders.rows[0].n as number, units: orders.rows[0].units as number };
}

describe("checkout", () => {
  it("places an order at the DB price, decrements stock and consumes the cart", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-ok`, listPriceCents: 2500, stock: 10 });
    const cartId = await cartWith(p.id, 3);
    const res = await checkout(cartId);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ items: [{ productId: p.id, quantity: 3, unitPriceCents: 2500 }], totalCents: 7500 });
    expect(await dbState(p.id)).toEqual({ available: 7, orders: 1, units: 3 });
    const order = await app.inject({ url: `/orders/${res.json().id}` });
    expect(order.json()).toMatchObject({ totalCents: 7500, items: [{ unitPriceCents: 2500 }] });
    expect((await checkout(cartId)).json().error).toBe("CART_EMPTY");
  });

  it("answers 409 PRICE_CHANGED for a price changed by raw SQL, writes nothing, and charges the new price once re-confirmed", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-price`, listPriceCents: 1000, stock: 5 });
    const cartId = await cartWith(p.id, 1);
    const { rows } = await pool.query("UPDATE products SET list_price_cents = 1200 WHERE id = $1 RETURNING version", [p.id]);
    // What the invalidator does with the change event (the cart view reads current prices from the cache).
    await invalidateEntity(redis, {
      schemaVersion: SCHEMA,
      entity: "product",
      id: p.id,
      version: Number(rows[0].version),
      fenceTtlMs: 60_000,
    });
    const key = `stale-${run}`;
    const res = await checkout(cartId, key);
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({
      error: "PRICE_CHANGED",
      items: [{ productId: p.id, seenPriceCents: 1000, currentPriceCents: 1200 }],
    });
    expect(await dbState(p.id)).toEqual({ available: 5, orders: 0, units: 0 });
    expect((await pool.query("SELECT 1 FROM idempotency_keys WHERE key = $1", [key])).rowCount).toBe(0);
    const cart = (await app.inject({ url: `/carts/${cartId}` })).json();
    expect(cart.items[0]).toMatchObject({ priceCentsSeen: 1000, currentPriceCents: 1200, priceChanged: true });

    // Re-confirm by re-adding the line at the price now shown; the same key may be retried.
    await app.inject({ method: "POST", url: `/carts/${cartId}/items`, payload: { productId: p.id, quantity: 1 } });
    const retried = await checkout(cartId, key);
    expect(retried.statusCode).toBe(201);
    expect(retried.json().items[0].unitPriceCents).toBe(1200);
  });

  it("answers 409 PRICE_CHANGED when the sale window closed after add-to-cart (no write happened)", async () => {
    const endsAt = new Date(Date.now() + 1_000);
    const p = await insertProduct(pool, {
      sku: `CO-${run}-sale`,
      listPriceCents: 1000,
      stock: 5,
      sale: { priceCents: 500, startsAt: new Date(Date.now() - 60_000), endsAt },
    });
    const cartId = await cartWith(p.id, 1);
    expect((await app.inject({ url: `/carts/${cartId}` })).json().items[0].priceCentsSeen).toBe(500);
    await waitFor(async () => ((await pool.query("SELECT now() >= $1 AS past", [endsAt])).rows[0].past ? true : undefined), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: "the sale to end",
    });
    const res = await checkout(cartId);
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ error: "PRICE_CHANGED", items: [{ seenPriceCents: 500, currentPriceCents: 1000 }] });
    expect(await dbState(p.id)).toEqual({ available: 5, orders: 0, units: 0 });
  });

  it("sells the last unit exactly once to two concurrent buyers", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-last`, listPriceCents: 100, stock: 1 });
    const carts = await Promise.all([cartWith(p.id, 1), cartWith(p.id, 1)]);
    const results = await Promise.all(carts.map((c) => checkout(c)));
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    expect(results.find((r) => r.statusCode === 409)?.json().error).toBe("OUT_OF_STOCK");
    expect(await dbState(p.id)).toEqual({ available: 0, orders: 1, units: 1 });
  });

  it("never oversells under a rush: 500 concurrent buyers, stock 50, the gate turning most away before Postgres", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-rush`, listPriceCents: 100, stock: 50 });
    const carts = await Promise.all(Array.from({ length: 500 }, () => cartWith(p.id, 1)));
    const reachedBefore = await checkoutsInBatches();
    const results = await Promise.all(carts.map((c) => checkout(c)));
    const codes = results.map((r) => (r.statusCode === 201 ? "ok" : r.json().error));
    expect(codes.filter((c) => c === "ok")).toHaveLength(50);
    expect(codes.filter((c) => c !== "ok").every((c) => c === "OUT_OF_STOCK")).toBe(true); // no 5xx, no deadlock surfaced
    expect(await dbState(p.id)).toEqual({ available: 0, orders: 50, units: 50 });
    const reachedPostgres = (await checkoutsInBatches()) - reachedBefore;
    console.log(`rush 500 buyers / 50 units: ${reachedPostgres} checkouts reached Postgres`);
    expect(reachedPostgres).toBeGreaterThanOrEqual(50);
    expect(reachedPostgres).toBeLessThan(100);
  });

  it("answers 429 RATE_LIMITED past the per-user limit, counted per user", async () => {
    const limited = await build({ rateLimit: { max: 3, windowMs: 60_000 } });
    extraApps.push(limited);
    const p = await insertProduct(pool, { sku: `CO-${run}-rl`, listPriceCents: 100, stock: 100 });
    const user = `user-${run}`;
    const attempt = async (who: string) => {
      const cartId = await cartWith(p.id, 1);
      return limited.inject({
        method: "POST",
        url: `/carts/${cartId}/checkout`,
        headers: { "idempotency-key": `rl-${runId()}`, "x-user-id": who },
      });
    };
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await attempt(user)).statusCode);
    expect(codes).toEqual([201, 201, 201, 429, 429]);
    const limitedRes = await attempt(user);
    expect(limitedRes.json().error).toBe("RATE_LIMITED");
    expect(Number(limitedRes.headers["retry-after"])).toBeGreaterThan(0);
    expect((await attempt(`other-${run}`)).statusCode).toBe(201);
  });

  it("sheds load with 503 OVERLOADED + Retry-After when more checkouts wait than the pool can serve", async () => {
    const tight = await build({ transactions: { limit: 1, queue: 2 }, gate: null });
    extraApps.push(tight);
    const p = await insertProduct(pool, { sku: `CO-${run}-busy`, listPriceCents: 100, stock: 1000 });
    const carts = await Promise.all(Array.from({ length: 30 }, () => cartWith(p.id, 1)));
    const results = await Promise.all(
      carts.map((c) => tight.inject({ method: "POST", url: `/carts/${c}/checkout`, headers: { "idempotency-key": `busy-${runId()}` } })),
    );
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.every((s) => s === 201 || s === 503)).toBe(true);
    const shed = results.filter((r) => r.statusCode === 503);
    expect(shed.length).toBeGreaterThan(0);
    expect(shed.every((r) => r.json().error === "OVERLOADED" && r.headers["retry-after"] === "1")).toBe(true);
    const placed = statuses.filter((s) => s === 201).length;
    expect(await dbState(p.id)).toEqual({ available: 1000 - placed, orders: placed, units: placed });
  });

  it("turns 20 concurrent requests with one Idempotency-Key into one order", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-idem`, listPriceCents: 300, stock: 50 });
    const cartId = await cartWith(p.id, 2);
    const key = `idem-${run}`;
    const results = await Promise.all(Array.from({ length: 20 }, () => checkout(cartId, key)));
    expect(results.every((r) => r.statusCode === 201)).toBe(true);
    expect(new Set(results.map((r) => r.json().id)).size).toBe(1);
    expect(await dbState(p.id)).toEqual({ available: 48, orders: 1, units: 2 });
    // Keys of an anonymous cart are scoped to that cart: the same key on another cart is a new checkout
    // (per-principal scope and IDEMPOTENCY_KEY_REUSED for users: test/edge.test.ts).
    const other = await cartWith(p.id, 1);
    expect((await checkout(other, key)).statusCode).toBe(201);
  });

  it("rejects bad input with 4xx codes, never 500", async () => {
    const p = await insertProduct(pool, { sku: `CO-${run}-input`, listPriceCents: 100, stock: 1 });
    const cartId = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json().id;
    const cases: Array<[string, string, unknown, number, string]> = [
      ["POST", `/carts/${cartId}/items`, { productId: p.id, quantity: 0 }, 400, "VALIDATION_FAILED"],
      ["POST", `/carts/${cartId}/items`, { productId: p.id, quantity: -3 }, 400, "VALIDATION_FAILED"],
      ["POST", `/carts/${cartId}/items`, { productId: p.id, quantity: 1e9 }, 400, "VALIDATION_FAILED"],
      ["POST", `/carts/${cartId}/items`, { productId: 999999999999, quantity: 1 }, 404, "PRODUCT_NOT_FOUND"],
      ["POST", "/carts/not-a-uuid/items", { productId: p.id, quantity: 1 }, 400, "VALIDATION_FAILED"],
      ["POST", "/carts/00000000-0000-4000-8000-000000000000/items", { productId: p.id, quantity: 1 }, 404, "CART_NOT_FOUND"],
      ["GET", "/carts/00000000-0000-4000-8000-000000000000", undefined, 404, "CART_NOT_FOUND"],
      ["GET", "/orders/nope", undefined, 400, "VALIDATION_FAILED"],
    ];
    for (const [method, url, payload, status, code] of cases) {
      const res = await app.inject({ method: method as "GET" | "POST", url, ...(payload ? { payload: payload as object } : {}) });
      expect([res.statusCode, res.json().error], `${method} ${url} ${JSON.stringify(payload)}`).toEqual([status, code]);
    }
    const noKey = await app.inject({ method: "POST", url: `/carts/${cartId}/checkout` });
    expect([noKey.statusCode, noKey.json().error]).toEqual([400, "IDEMPOTENCY_KEY_REQUIRED"]);
    const huge = await app.inject({
      method: "POST",
      url: "/carts",
      headers: { "content-type": "application/json" },
      payload: `{"userId":"${"x".repeat(100_000)}"}`,
    });
    expect([huge.statusCode, huge.json().error]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    const broken = await app.inject({ method: "POST", url: "/carts", headers: { "content-type": "application/json" }, payload: "{" });
    expect([broken.statusCode, broken.json().error]).toEqual([400, "INVALID_BODY"]);
  });
});

describe("checkout during a bulk import", () => {
  it("charges every order the effective price at its commit while 1,000 prices change", async () => {
    const startedAt = new Date();
    const products = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => insertProduct(pool, { sku: `CO-${run}-imp-${i}`, listPriceCents: 1000, stock: 1000 })),
    );
    const buyers = await Promise.all(Array.from({ length: 150 }, (_, i) => cartWith((products[(i * 7) % 1000] as { id: number }).id, 1)));
    // A second wave checks out once the import has committed (the first may all be done by then:
    // checkout is one statement now), so orders land on both sides of it whatever the timing.
    const lateBuyers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => cartWith((products[(i * 11 + 3) % 1000] as { id: number }).id, 1)),
    );

    // Each buyer checks out; on PRICE_CHANGED re-confirms (re-adds the line) and tries once more.
    const buyer = async (cartId: string, i: number) => {
      let res = await checkout(cartId, `imp-${run}-${i}-a`);
      if (res.statusCode === 409 && res.json().error === "PRICE_CHANGED") {
        const productId = res.json().items[0].productId;
        await app.inject({ method: "POST", url: `/carts/${cartId}/items`, payload: { productId, quantity: 1 } });
        res = await checkout(cartId, `imp-${run}-${i}-b`);
      }
      return res;
    };
    const importRows = products.map((p) => ({ sku: p.sku, listPriceCents: 1100 }));
    const [early, late] = await Promise.all([
      Promise.all(buyers.map((c, i) => buyer(c, i))),
      (async () => {
        // Let part of the rush commit first, so orders land on both sides of the import.
        await waitFor(
          async () => {
            const { rows: n } = await pool.query("SELECT count(*)::int AS n FROM order_items WHERE product_id = ANY($1)", [
              products.map((p) => p.id),
            ]);
            return n[0].n >= 30 ? true : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 2, what: "30 orders before the import" },
        );
        await importListPrices(db, importRows);
        return Promise.all(lateBuyers.map((c, i) => buyer(c, 1_000 + i)));
      })(),
    ]);
    const results = [...early, ...late];
    expect(results.every((r) => r.statusCode === 201 || r.statusCode === 409)).toBe(true);

    // The audit compares each order's unit price with the price state committed last
    // before the order's own commit (price history + pg_xact_commit_timestamp).
    const audit = await auditOrders(pool, { since: startedAt, productIds: products.map((p) => p.id) });
    const { rows: sides } = await pool.query(
      `SELECT count(*) FILTER (WHERE oi.unit_price_cents = 1000)::int AS before, count(*) FILTER (WHERE oi.unit_price_cents = 1100)::int AS after
       FROM order_items oi WHERE oi.product_id = ANY($1)`,
      [products.map((p) => p.id)],
    );
    console.log(
      `import during checkouts: ${audit.orderLinesChecked} orders (${sides[0].before} at the old price, ${sides[0].after} at the new), ${audit.wrongPrice.length} at a wrong price`,
    );
    expect(audit.orderLinesChecked).toBe(sides[0].before + sides[0].after);
    expect(sides[0].before).toBeGreaterThan(0);
    expect(sides[0].after).toBeGreaterThan(0);
    expect(audit.unauditable).toBe(0);
    expect(audit.wrongPrice).toEqual([]);
  });
});
