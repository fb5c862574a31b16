import { MAX_CART_LINES, MAX_CART_UNITS } from "@flashsale/db";
import { insertProducts, runId } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CheckoutFixture, checkoutFixture } from "./fixture.ts";

/**
 * A cart holds at most MAX_CART_LINES distinct products. Without a bound one anonymous cart of
 * 9,000 lines (quantity = the stock of each) made its checkout hold stock-gate reservations on
 * all of them for seconds (every other buyer of those products: 409 OUT_OF_STOCK), run its
 * transaction past the 5 s limit while holding their inventory rows, or buy out 9,000 products
 * in one order; one GET of it fired 9,000 price lookups at once (503). Real Postgres and Redis.
 */
const run = runId();
let fx: CheckoutFixture;
let pool: pg.Pool;
let app: FastifyInstance;

beforeAll(async () => {
  fx = await checkoutFixture("checkout-cart-size-test");
  ({ pool, app } = fx);
});
afterAll(async () => {
  await fx?.close();
});

describe("cart size", () => {
  it(`a new line past ${MAX_CART_LINES} distinct products is 400 CART_FULL; existing lines still change`, async () => {
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
    expect([refused.statusCode, refused.json().error]).toEqual([400, "CART_FULL"]);
    // Changing a line already in the cart is not a new line.
    const first = products[0];
    if (!first) throw new Error("no product");
    expect((await add(first.id, 3)).statusCode).toBe(201);

    const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM cart_items WHERE cart_id = $1", [cartId]);
    expect(Number(rows[0]?.n)).toBe(MAX_CART_LINES);
  }, 60_000);

  it("concurrent adds cannot take a cart past its limits (no route removes a line: a cart past them could never check out)", async () => {
    const products = await insertProducts(
      pool,
      Array.from({ length: MAX_CART_LINES + 30 }, (_, i) => ({ sku: `SIZE-${run}-race-${i}`, listPriceCents: 100, stock: 5 })),
    );
    const cartId = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json().id as string;
    const add = (productId: number, quantity = 1) =>
      app.inject({ method: "POST", url: `/carts/${cartId}/items`, payload: { productId, quantity } });
    for (const p of products.slice(0, MAX_CART_LINES - 5)) expect((await add(p.id)).statusCode).toBe(201);
    const lines = await Promise.all(products.slice(MAX_CART_LINES - 5).map((p) => add(p.id)));
    expect(lines.filter((r) => r.statusCode === 201)).toHaveLength(5);

    const units = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json().id as string;
    const addUnits = (productId: number) =>
      app.inject({ method: "POST", url: `/carts/${units}/items`, payload: { productId, quantity: 400 } });
    const unitAnswers = await Promise.all(products.slice(0, 6).map((p) => addUnits(p.id)));
    expect(unitAnswers.filter((r) => r.statusCode === 201)).toHaveLength(Math.floor(MAX_CART_UNITS / 400));

    const { rows } = await pool.query<{ cart_id: string; lines: string; units: string }>(
      "SELECT cart_id::text, count(*) AS lines, sum(quantity) AS units FROM cart_items WHERE cart_id = ANY($1::uuid[]) GROUP BY cart_id",
      [[cartId, units]],
    );
    const byCart = new Map(rows.map((r) => [r.cart_id, { lines: Number(r.lines), units: Number(r.units) }]));
    expect(byCart.get(cartId)?.lines).toBe(MAX_CART_LINES);
    expect(byCart.get(units)?.units).toBeLessThanOrEqual(MAX_CART_UNITS);
  }, 60_000);
});
