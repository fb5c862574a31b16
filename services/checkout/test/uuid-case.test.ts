import { insertProduct, runId } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CheckoutFixture, checkoutFixture } from "./fixture.ts";

/**
 * A cart id is accepted in either case of its hex digits (the routes' pattern, Postgres' uuid),
 * so a client spelling it in upper case must get what everyone else gets: the retry of a placed
 * order replays it. The replay check compared the stored (lower-case) id with the request's text,
 * so that retry was 422 IDEMPOTENCY_KEY_REUSED instead of the order, for users and anonymous
 * carts alike. Real Postgres and Redis.
 */
const run = runId();
let fx: CheckoutFixture;
let pool: pg.Pool;
let app: FastifyInstance;

beforeAll(async () => {
  fx = await checkoutFixture("checkout-uuid-case-test");
  ({ pool, app } = fx);
});
afterAll(async () => {
  await fx?.close();
});

describe("an upper-case cart id", () => {
  it.each([
    ["a user", `upper-${run}`],
    ["an anonymous shopper", null],
  ])("%s retrying a checkout gets the same order back", async (_who, user) => {
    const headers: Record<string, string> = user === null ? {} : { "x-user-id": user };
    const p = await insertProduct(pool, { sku: `UPPER-${run}-${user ?? "anon"}`, listPriceCents: 1_000, stock: 10 });
    const cartId = (await app.inject({ method: "POST", url: "/carts", headers, payload: {} })).json().id as string;
    const upper = cartId.toUpperCase();
    const added = await app.inject({ method: "POST", url: `/carts/${upper}/items`, headers, payload: { productId: p.id, quantity: 1 } });
    expect(added.statusCode).toBe(201);

    const key = `upper-${run}-${user ?? "anon"}`;
    const send = (id: string) =>
      app.inject({ method: "POST", url: `/carts/${id}/checkout`, headers: { ...headers, "idempotency-key": key } });
    const first = await send(upper);
    expect(first.statusCode).toBe(201);
    const retry = await send(upper);
    expect([retry.statusCode, retry.headers["idempotent-replayed"], retry.json().id]).toEqual([201, "true", first.json().id]);
    // The same cart spelled in lower case is the same request too.
    expect((await send(cartId)).json().id).toBe(first.json().id);
    // One order, and the order names the cart as Postgres does.
    const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM orders WHERE cart_id = $1", [cartId]);
    expect(Number(rows[0]?.n)).toBe(1);
    expect(first.json().cartId).toBe(cartId);
  });
});
