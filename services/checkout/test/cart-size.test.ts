import { StockGate } from "@flashsale/cache";
import { createDb, type Db, MAX_CART_LINES } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProducts, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckoutApp } from "../src/app.ts";

/**
 * A cart holds at most MAX_CART_LINES distinct products. Without a bound one anonymous cart of
 * 9,000 lines (quantity = the stock of each) made its checkout hold stock-gate reservations on
 * all of them for seconds (every other buyer of those products: 409 OUT_OF_STOCK), run its
 * transaction past the 5 s limit while holding their inventory rows, or buy out 9,000 products
 * in one order; one GET of it fired 9,000 price lookups at once (503). Real Postgres and Redis.
 */
const run = runId();
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let app: FastifyInstance;

beforeAll(async () => {
  pool = pgPool();
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 4 });
  redis = redisClient();
  app = await buildCheckoutApp({
    db,
    redis,
    logger: createLogger("checkout-cart-size-test", "silent"),
    metrics: createMetricsRegistry("checkout-cart-size-test"),
    productCache: createProductCache({ redis, schemaVersion: 5_000 + Math.floor(Math.random() * 1_000), ttlSeconds: 3600, leaseMs: 2000 }),
    gate: new StockGate(redis),
    transactions: { limit: 4, queue: 100 },
    rateLimit: { max: 1_000_000, windowMs: 10_000 },
  });
});
afterAll(async () => {
  await app?.close();
  await Promise.all([pool?.end(), db?.$disconnect(), redis?.quit()]);
});

describe("cart size", () => {
  it(`a new line past ${MAX_CART_LINES} distinct products is 409 CART_FULL; existing lines still change`, async () => {
    const products = await insertProducts(
      pool,
      Array.from({ length: MAX_CART_LINES + 1 }, (_, i) => ({ sku: `SIZE-${run}-${i}`, listPriceCents: 100, stock: 5 })),
    );
    const cartId = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json().id as string;
    const add = (productId: number, quantity = 1) =>
      app.inject({ method: "POST", url: `/carts/${cartId}/items`, payload: { productId, quantity } });
    for (const p of products.slice(0, MAX_CART_LINES)) expect((await add(p.id)).statusCode).toBe(201);

    const extra = products[MAX_CART_LINES];
    if (!extra) throw new Error("no extra product");
    const refused = await add(extra.id);
    expect([refused.statusCode, refused.json().error]).toEqual([409, "CART_FULL"]);
    // Changing a line already in the cart is not a new line.
    const first = products[0];
    if (!first) throw new Error("no product");
    expect((await add(first.id, 3)).statusCode).toBe(201);

    const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM cart_items WHERE cart_id = $1", [cartId]);
    expect(Number(rows[0]?.n)).toBe(MAX_CART_LINES);
  }, 60_000);
});
