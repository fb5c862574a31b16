import net from "node:net";
import { StockGate } from "@flashsale/cache";
import { createDb, type Db } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import type { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildCheckoutOptions, buildCheckoutApp } from "../src/app.ts";

/**
 * The checkout service's HTTP edge against the real Postgres and Redis (issue 17):
 * ownership by the gateway-set X-User-Id, strict input, honest error codes, the rate-limit
 * policy, product deletion while in carts, and per-principal idempotency keys.
 */
const run = runId();
const SCHEMA = 5_000 + Math.floor(Math.random() * 1_000);
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let app: FastifyInstance;
const extra: FastifyInstance[] = [];
const extraDbs: Db[] = [];

async function build(overrides: Partial<BuildCheckoutOptions> = {}): Promise<FastifyInstance> {
  const a = await buildCheckoutApp({
    db,
    redis,
    logger: createLogger("checkout-edge-test", "silent"),
    metrics: createMetricsRegistry("checkout-edge-test"),
    productCache: createProductCache({ redis, schemaVersion: SCHEMA, ttlSeconds: 3600, leaseMs: 2000 }),
    gate: new StockGate(redis),
    transactions: { limit: 10, queue: 1_000 },
    rateLimit: { max: 1_000_000, windowMs: 10_000 },
    ...overrides,
  });
  if (Object.keys(overrides).length > 0) extra.push(a);
  return a;
}

beforeAll(async () => {
  pool = pgPool();
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 10 });
  redis = redisClient();
  app = await build();
});
afterAll(async () => {
  await Promise.all([app, ...extra].map((a) => a.close()));
  await Promise.all([pool.end(), db.$disconnect(), redis.quit(), ...extraDbs.map((d) => d.$disconnect())]);
});

const as = (user: string | null): Record<string, string> => (user === null ? {} : { "x-user-id": user });

async function newCart(user: string | null, target = app): Promise<string> {
  const res = await target.inject({ method: "POST", url: "/carts", headers: as(user), payload: {} });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}
const addItem = (cartId: string, user: string | null, productId: number, quantity = 1, target = app) =>
  target.inject({ method: "POST", url: `/carts/${cartId}/items`, headers: as(user), payload: { productId, quantity } });
const viewCart = (cartId: string, user: string | null) => app.inject({ url: `/carts/${cartId}`, headers: as(user) });
const checkout = (cartId: string, user: string | null, key: string, target = app) =>
  target.inject({ method: "POST", url: `/carts/${cartId}/checkout`, headers: { ...as(user), "idempotency-key": key } });
const viewOrder = (orderId: string, user: string | null) => app.inject({ url: `/orders/${orderId}`, headers: as(user) });
const key = () => `edge-${run}-${Math.random().toString(36).slice(2)}`;
const codeOf = (res: { statusCode: number; json(): { error?: string } }) => [
  res.statusCode,
  res.statusCode >= 400 ? res.json().error : "ok",
];

async function product(tag: string, stock = 100, priceCents = 1000) {
  return insertProduct(pool, { sku: `EDGE-${run}-${tag}`, listPriceCents: priceCents, stock });
}

describe("ownership: X-User-Id is the principal", () => {
  it("a user's cart is read, changed and checked out only by that user; others get 404", async () => {
    const p = await product("own");
    const alice = `alice-${run}`;
    const cartId = await newCart(alice);
    expect((await addItem(cartId, alice, p.id)).statusCode).toBe(201);
    for (const other of [`bob-${run}`, null]) {
      expect(codeOf(await viewCart(cartId, other))).toEqual([404, "CART_NOT_FOUND"]);
      expect(codeOf(await addItem(cartId, other, p.id, 5))).toEqual([404, "CART_NOT_FOUND"]);
      expect(codeOf(await checkout(cartId, other, key()))).toEqual([404, "CART_NOT_FOUND"]);
    }
    // Nothing the others did reached the cart.
    const cart = (await viewCart(cartId, alice)).json();
    expect(cart.items).toEqual([expect.objectContaining({ productId: p.id, quantity: 1 })]);
    const placed = await checkout(cartId, alice, key());
    expect(placed.statusCode).toBe(201);
    expect(placed.json().cartId).toBe(cartId);
  });

  it("an order is readable only by its user, and only its user sees the cart id", async () => {
    const p = await product("order");
    const alice = `alice-${run}-o`;
    const cartId = await newCart(alice);
    await addItem(cartId, alice, p.id);
    const orderId = (await checkout(cartId, alice, key())).json().id;
    const mine = await viewOrder(orderId, alice);
    expect(mine.statusCode).toBe(200);
    expect(mine.json().cartId).toBe(cartId);
    for (const other of [`bob-${run}`, null]) {
      const res = await viewOrder(orderId, other);
      expect(codeOf(res)).toEqual([404, "NOT_FOUND"]);
      expect(res.body).not.toContain(cartId);
    }
  });

  it("an anonymous cart is a capability until the first user id claims it; the order is that user's", async () => {
    const p = await product("claim");
    const alice = `alice-${run}-c`;
    const cartId = await newCart(null);
    expect((await addItem(cartId, null, p.id, 2)).statusCode).toBe(201);
    expect((await viewCart(cartId, null)).statusCode).toBe(200);
    // Alice signs in: her first request on the cart claims it.
    const claimed = await viewCart(cartId, alice);
    expect(claimed.statusCode).toBe(200);
    expect(claimed.json()).toMatchObject({ userId: alice, items: [{ productId: p.id, quantity: 2 }] });
    expect(codeOf(await viewCart(cartId, null))).toEqual([404, "CART_NOT_FOUND"]);
    expect(codeOf(await viewCart(cartId, `bob-${run}`))).toEqual([404, "CART_NOT_FOUND"]);
    const order = await checkout(cartId, alice, key());
    expect(order.statusCode).toBe(201);
    const { rows } = await pool.query("SELECT user_id FROM orders WHERE id = $1", [order.json().id]);
    expect(rows[0].user_id).toBe(alice);
  });

  it("two users racing to claim one anonymous cart: exactly one gets it", async () => {
    const cartId = await newCart(null);
    const users = Array.from({ length: 6 }, (_, i) => `racer-${run}-${i}`);
    const results = await Promise.all(users.map((u) => viewCart(cartId, u)));
    const winners = results.filter((r) => r.statusCode === 200);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 404)).toHaveLength(users.length - 1);
    const { rows } = await pool.query("SELECT user_id FROM carts WHERE id = $1", [cartId]);
    expect(rows[0].user_id).toBe(winners[0]?.json().userId);
  });

  it("once claimed, an anonymous cart's stored checkout answers are closed to the anonymous id too", async () => {
    const p = await product("claim-replay");
    const cartId = await newCart(null);
    await addItem(cartId, null, p.id);
    const k = key();
    expect((await checkout(cartId, null, k)).statusCode).toBe(201);
    expect((await checkout(cartId, null, k)).headers["idempotent-replayed"]).toBe("true");
    expect((await viewCart(cartId, `erin-${run}`)).statusCode).toBe(200); // claimed
    expect(codeOf(await checkout(cartId, null, k))).toEqual([404, "CART_NOT_FOUND"]);
  });

  it("an anonymous order is readable with its id alone and never shows the cart id", async () => {
    const p = await product("anon-order");
    const cartId = await newCart(null);
    await addItem(cartId, null, p.id);
    const placed = await checkout(cartId, null, key());
    expect(placed.statusCode).toBe(201);
    for (const who of [null, `carol-${run}`]) {
      const res = await viewOrder(placed.json().id, who);
      expect(res.statusCode).toBe(200);
      expect(res.json().cartId).toBeUndefined();
    }
  });
});

describe("strict input", () => {
  it("ids must be canonical UUIDs: urn:uuid: and friends are 400, never 500", async () => {
    const uuid = "0b7c9f0e-8a51-4c3e-9d8e-0f1a2b3c4d5e";
    for (const bad of [`urn:uuid:${uuid}`, `{${uuid}}`, uuid.replaceAll("-", "")]) {
      const id = encodeURIComponent(bad);
      const results = await Promise.all([
        app.inject({ url: `/carts/${id}` }),
        app.inject({ method: "POST", url: `/carts/${id}/items`, payload: { productId: 1, quantity: 1 } }),
        app.inject({ method: "POST", url: `/carts/${id}/checkout`, headers: { "idempotency-key": key() } }),
        app.inject({ url: `/orders/${id}` }),
      ]);
      expect(results.map(codeOf), bad).toEqual(Array(4).fill([400, "VALIDATION_FAILED"]));
    }
  });

  it('bodies are not coerced: a quantity must be an integer, not true, "7" or [3]', async () => {
    const p = await product("coerce");
    const cartId = await newCart(null);
    for (const quantity of [true, "7", [3], 2.5, null]) {
      expect(codeOf(await addItem(cartId, null, p.id, quantity as number)), JSON.stringify(quantity)).toEqual([400, "VALIDATION_FAILED"]);
    }
    expect((await viewCart(cartId, null)).json().items).toEqual([]);
  });

  it("unknown properties are refused with 400 UNKNOWN_PROPERTY naming the property", async () => {
    const p = await product("unknown");
    const cartId = await newCart(null);
    const res = await app.inject({
      method: "POST",
      url: `/carts/${cartId}/items`,
      payload: { productId: p.id, quantity: 1, priceCents: 1 },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: "UNKNOWN_PROPERTY", property: "priceCents" });
    expect(res.json().message).toContain("priceCents");
    // The owner comes from X-User-Id only; a body cannot name one.
    const spoof = await app.inject({ method: "POST", url: "/carts", payload: { userId: "someone-else" } });
    expect(spoof.json()).toMatchObject({ error: "UNKNOWN_PROPERTY", property: "userId" });
  });

  it("an X-User-Id that is not a plain visible-ASCII id is 400", async () => {
    const res = await app.inject({ method: "POST", url: "/carts", headers: { "x-user-id": "a b" }, payload: {} });
    expect(codeOf(res)).toEqual([400, "VALIDATION_FAILED"]);
  });
});

/** A counter's value from a registry (0 when absent). */
async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, l]) => String(x.labels[k]) === l));
  return Number(v?.value ?? 0);
}

describe("honest codes", () => {
  it("a client hanging up mid-body is logged and counted as an abort, not as a database outage", async () => {
    const metrics = createMetricsRegistry("checkout-edge-abort");
    const live = await build({ metrics });
    await live.listen({ host: "127.0.0.1", port: 0 });
    const { port } = live.server.address() as net.AddressInfo;
    const cartId = await newCart(null, live);
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        // Headers and a partial body, handed to the kernel before the close: the server reads
        // them, then the end of the stream, mid-body (it answers nothing before the rest arrives).
        socket.write(
          `POST /carts/${cartId}/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"productId":`,
          () => socket.destroy(),
        );
      });
      socket.on("close", () => resolve());
      socket.on("error", () => {});
    });
    const aborts = await waitFor(async () => ((await metric(metrics, "http_client_aborts_total")) >= 1 ? 1 : undefined), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: "the abort to be counted",
    });
    expect(aborts).toBe(1);
    await waitFor(
      async () => ((await metric(metrics, "http_error_responses_total", { code: "CLIENT_ABORTED" })) === 1 ? true : undefined),
      {
        timeoutMs: 5_000,
        intervalMs: 20,
        what: "the aborted request's error path",
      },
    );
    expect(await metric(metrics, "http_error_responses_total", { code: "DB_UNAVAILABLE" })).toBe(0);
    expect(await metric(metrics, "http_error_responses_total", { code: "INTERNAL" })).toBe(0);
  });

  it("a database that is really unreachable answers 503 DB_UNAVAILABLE with Retry-After", async () => {
    const url = new URL(TEST_ENV.databaseUrl);
    url.port = "1"; // nothing listens: connection refused, as with a stopped Postgres
    const down = createDb({ url: url.toString(), poolMax: 1, connectTimeoutMs: 1_000 });
    extraDbs.push(down);
    const metrics = createMetricsRegistry("checkout-edge-down");
    const outage = await build({ db: down, metrics });
    for (const res of [
      await outage.inject({ method: "POST", url: "/carts", payload: {} }),
      await outage.inject({ url: "/carts/0b7c9f0e-8a51-4c3e-9d8e-0f1a2b3c4d5e" }),
    ]) {
      expect(codeOf(res)).toEqual([503, "DB_UNAVAILABLE"]);
      expect(res.headers["retry-after"]).toBe("1");
    }
    expect(await metric(metrics, "http_error_responses_total", { code: "DB_UNAVAILABLE" })).toBe(2);
  });
});

describe("rate limit: only checkout attempts that reach the business logic count", () => {
  it("400s and idempotent replays cost nothing; the limit then holds per principal", async () => {
    const limited = await build({ rateLimit: { max: 3, windowMs: 60_000 } });
    const p = await product("rl");
    const user = `rl-${run}`;
    const cart = async () => {
      const id = await newCart(user, limited);
      await addItem(id, user, p.id, 1, limited);
      return id;
    };
    const first = await cart();
    // Ten invalid requests: no Idempotency-Key, a malformed key, a malformed cart id.
    for (let i = 0; i < 4; i++) {
      const res = await limited.inject({ method: "POST", url: `/carts/${first}/checkout`, headers: as(user) });
      expect(codeOf(res)).toEqual([400, "IDEMPOTENCY_KEY_REQUIRED"]);
    }
    for (let i = 0; i < 3; i++) expect(codeOf(await checkout(first, user, "bad key!", limited))).toEqual([400, "VALIDATION_FAILED"]);
    for (let i = 0; i < 3; i++) expect(codeOf(await checkout("nope", user, key(), limited))).toEqual([400, "VALIDATION_FAILED"]);
    // Attempt 1, then five replays of it.
    const k1 = key();
    expect((await checkout(first, user, k1, limited)).statusCode).toBe(201);
    for (let i = 0; i < 5; i++) {
      const replay = await checkout(first, user, k1, limited);
      expect(replay.statusCode).toBe(201);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
    }
    // Attempts 2 and 3 pass, the 4th is limited; another principal is not.
    expect((await checkout(await cart(), user, key(), limited)).statusCode).toBe(201);
    expect((await checkout(await cart(), user, key(), limited)).statusCode).toBe(201);
    const over = await checkout(await cart(), user, key(), limited);
    expect(codeOf(over)).toEqual([429, "RATE_LIMITED"]);
    expect(Number(over.headers["retry-after"])).toBeGreaterThan(0);
    const other = `rl-other-${run}`;
    const otherCart = await newCart(other, limited);
    await addItem(otherCart, other, p.id, 1, limited);
    expect((await checkout(otherCart, other, key(), limited)).statusCode).toBe(201);
  });
});

describe("rate limit key of anonymous shoppers behind a proxy", () => {
  const anonymousCheckout = async (target: FastifyInstance, clientIp: string) => {
    const p = await product(`rl-ip-${Math.random().toString(36).slice(2)}`);
    const cartId = await newCart(null, target);
    await addItem(cartId, null, p.id, 1, target);
    return target.inject({
      method: "POST",
      url: `/carts/${cartId}/checkout`,
      headers: { "idempotency-key": key(), "x-forwarded-for": clientIp },
    });
  };

  it("with TRUSTED_PROXIES the client IP from X-Forwarded-For is the key, so shoppers do not share the proxy's budget", async () => {
    const behindProxy = await build({ rateLimit: { max: 1, windowMs: 60_000 }, limits: { trustedProxies: ["loopback"] } });
    const [a, b] = [`198.51.100.${Math.floor(Math.random() * 250)}`, `203.0.113.${Math.floor(Math.random() * 250)}`];
    expect((await anonymousCheckout(behindProxy, a)).statusCode).toBe(201);
    expect((await anonymousCheckout(behindProxy, b)).statusCode).toBe(201);
    expect(codeOf(await anonymousCheckout(behindProxy, a))).toEqual([429, "RATE_LIMITED"]);
  });

  it("without it, X-Forwarded-For is not believed (a client cannot pick its own key)", async () => {
    const direct = await build({ rateLimit: { max: 1, windowMs: 60_000 } });
    // Both come from the same peer (the test's loopback), whose one slot is used by the first
    // at the latest: forged X-Forwarded-For values do not give each its own budget.
    const forged = () => `192.0.2.${Math.floor(Math.random() * 250)}`;
    const first = await anonymousCheckout(direct, forged());
    const second = await anonymousCheckout(direct, forged());
    expect(codeOf(second)).toEqual([429, "RATE_LIMITED"]);
    expect([201, 429]).toContain(first.statusCode);
  });
});

describe("deleting a product that sits in carts", () => {
  it("raw SQL DELETE works; the carts show the line as unavailable and check out the rest", async () => {
    const gone = await product("del-gone");
    const kept = await product("del-kept");
    const abandoned = await newCart(null); // nobody will come back to this one
    await addItem(abandoned, null, gone.id, 2);
    const user = `del-${run}`;
    const active = await newCart(user);
    await addItem(active, user, gone.id, 3);
    await addItem(active, user, kept.id, 1);

    await pool.query("DELETE FROM products WHERE id = $1", [gone.id]);

    const view = (await viewCart(active, user)).json();
    expect(view.items).toEqual([expect.objectContaining({ productId: kept.id, quantity: 1 })]);
    expect(view.unavailableItems).toEqual([
      expect.objectContaining({ productId: gone.id, quantity: 3, priceCentsSeen: 1000, reason: "PRODUCT_DELETED" }),
    ]);
    const order = await checkout(active, user, key());
    expect(order.statusCode).toBe(201);
    expect(order.json().items).toEqual([{ productId: kept.id, quantity: 1, unitPriceCents: 1000 }]);
    expect(codeOf(await checkout(abandoned, null, key()))).toEqual([409, "CART_EMPTY"]);
    expect((await viewCart(abandoned, null)).json().unavailableItems).toHaveLength(1);
    // Re-adding the deleted product is a clear 404.
    expect(codeOf(await addItem(active, user, gone.id))).toEqual([404, "PRODUCT_NOT_FOUND"]);
  });

  it("a product that was ordered still cannot be deleted (orders keep their lines)", async () => {
    const p = await product("del-ordered");
    const cartId = await newCart(null);
    await addItem(cartId, null, p.id);
    expect((await checkout(cartId, null, key())).statusCode).toBe(201);
    await expect(pool.query("DELETE FROM products WHERE id = $1", [p.id])).rejects.toMatchObject({ code: "23503" });
  });
});

describe("idempotency keys are scoped per principal", () => {
  it("the same key from two users places two orders; neither sees the other's", async () => {
    const p = await product("idem-users");
    const k = key();
    const [alice, bob] = [`alice-${run}-k`, `bob-${run}-k`];
    const [ca, cb] = [await newCart(alice), await newCart(bob)];
    await addItem(ca, alice, p.id, 1);
    await addItem(cb, bob, p.id, 2);
    const a = await checkout(ca, alice, k);
    const b = await checkout(cb, bob, k);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(a.json().id).not.toBe(b.json().id);
    expect(b.json().items[0].quantity).toBe(2);
    expect(b.headers["idempotent-replayed"]).toBeUndefined();
  });

  it("a key reused for a changed cart or another cart is 422 IDEMPOTENCY_KEY_REUSED; an unchanged retry replays", async () => {
    const p = await product("idem-reuse");
    const q = await product("idem-reuse-2");
    const user = `dora-${run}`;
    const cartId = await newCart(user);
    await addItem(cartId, user, p.id, 1);
    const k = key();
    const placed = await checkout(cartId, user, k);
    expect(placed.statusCode).toBe(201);
    const replay = await checkout(cartId, user, k);
    expect(replay.json().id).toBe(placed.json().id);
    expect(replay.headers["idempotent-replayed"]).toBe("true");

    await addItem(cartId, user, q.id, 4); // the cart changed: the same key would now mean another order
    const reused = await checkout(cartId, user, k);
    expect(codeOf(reused)).toEqual([422, "IDEMPOTENCY_KEY_REUSED"]);
    expect((await viewCart(cartId, user)).json().items).toEqual([expect.objectContaining({ productId: q.id, quantity: 4 })]);
    const other = await newCart(user);
    await addItem(other, user, p.id, 1);
    expect(codeOf(await checkout(other, user, k))).toEqual([422, "IDEMPOTENCY_KEY_REUSED"]);
    // A new key checks the changed cart out.
    const next = await checkout(cartId, user, key());
    expect(next.statusCode).toBe(201);
    expect(next.json().items).toEqual([{ productId: q.id, quantity: 4, unitPriceCents: 1000 }]);
  });
});
