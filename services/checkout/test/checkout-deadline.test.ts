import { createDb, type Db } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, type SilenceableProxy, startSilenceableProxy, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckoutApp } from "../src/app.ts";

/**
 * A checkout runs several statements (replay check, cart claim, the batch), each bounded on its own
 * (statement timeout, client read timeout). With Postgres frozen, a buyer would wait a multiple of
 * them (the fault matrix saw 7+ s on SIGSTOP postgres): the checkout deadline answers 503 in time.
 * Postgres sits behind the test's own proxy, which goes silent like a frozen server.
 */
const DEADLINE_MS = 1_500;
let proxy: SilenceableProxy;
let db: Db;
let redis: Redis;
let pool: pg.Pool;
let app: FastifyInstance;

beforeAll(async () => {
  const target = new URL(TEST_ENV.databaseUrl);
  proxy = await startSilenceableProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const url = new URL(TEST_ENV.databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  db = createDb({ url: url.toString(), poolMax: 2, statementTimeoutMs: 1_000 });
  redis = redisClient();
  pool = pgPool();
  app = await buildCheckoutApp({
    db,
    redis,
    logger: createLogger("checkout-deadline", "silent"),
    metrics: createMetricsRegistry("checkout-deadline"),
    productCache: createProductCache({ redis, schemaVersion: 7_000 + Math.floor(Math.random() * 1_000), ttlSeconds: 60, leaseMs: 2000 }),
    gate: null,
    transactions: { limit: 4, queue: 100 },
    rateLimit: { max: 1_000_000, windowMs: 10_000 },
    checkoutDeadlineMs: DEADLINE_MS,
  });
});

afterAll(async () => {
  proxy.silent = false;
  await app?.close();
  await Promise.all([db?.$disconnect(), redis?.quit(), pool?.end()]);
  await proxy?.close();
});

describe("checkout deadline", () => {
  it("answers 503 DB_UNAVAILABLE with Retry-After within the deadline while Postgres does not answer; the same key then places the order once", async () => {
    const p = await insertProduct(pool, { sku: `DEADLINE-${runId()}`, listPriceCents: 1_000, stock: 5 });
    const cart = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json() as { id: string };
    expect(
      (await app.inject({ method: "POST", url: `/carts/${cart.id}/items`, payload: { productId: p.id, quantity: 1 } })).statusCode,
    ).toBe(201);
    proxy.silent = true;
    const key = `deadline-${runId()}`;
    const t0 = performance.now();
    const res = await app.inject({
      method: "POST",
      url: `/carts/${cart.id}/checkout`,
      headers: { "idempotency-key": key },
    });
    const ms = performance.now() - t0;
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: "DB_UNAVAILABLE" });
    expect(res.headers["retry-after"]).toBe("1");
    // Each statement alone would wait its read timeout (1 s + 1 s); the deadline answers first.
    expect(ms).toBeLessThan(DEADLINE_MS + 400);
    proxy.silent = false;
    // The retry the 503 asks for: one order for the cart whatever the first attempt did meanwhile.
    const again = () => app.inject({ method: "POST", url: `/carts/${cart.id}/checkout`, headers: { "idempotency-key": key } });
    let retry = await again();
    for (let i = 0; retry.statusCode === 503 && i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      retry = await again();
    }
    expect(retry.statusCode).toBe(201);
    const orders = await pool.query("SELECT count(*)::int AS n FROM orders WHERE cart_id = $1", [cart.id]);
    expect(orders.rows[0]).toEqual({ n: 1 });
  }, 30_000);

  it("bounds every cart route the same way (adding a line: claim, product lookup, upsert)", async () => {
    const p = await insertProduct(pool, { sku: `DEADLINE-ADD-${runId()}`, listPriceCents: 1_000, stock: 5 });
    const cart = (await app.inject({ method: "POST", url: "/carts", payload: {} })).json() as { id: string };
    proxy.silent = true;
    const t0 = performance.now();
    const res = await app.inject({ method: "POST", url: `/carts/${cart.id}/items`, payload: { productId: p.id, quantity: 1 } });
    const ms = performance.now() - t0;
    proxy.silent = false;
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: "DB_UNAVAILABLE" });
    expect(ms).toBeLessThan(DEADLINE_MS + 400);
  }, 30_000);
});
