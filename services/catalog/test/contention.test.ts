import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";

/**
 * Admin writes meeting lock contention on the real Postgres answer honest codes, never 500:
 * - a product DELETE racing a checkout deadlocks (the checkout holds the cart row and waits
 *   for the product's row; the cascade's revision trigger waits for the cart): the DELETE
 *   repeats itself (packages/db retryingConflicts) instead of answering 500 INTERNAL;
 * - a statement cut by DB_STATEMENT_TIMEOUT_MS while it waits for a row lock is 503
 *   OVERLOADED with Retry-After (SQLSTATE 57014 was unclassified: 500 INTERNAL).
 * The "checkout" is a SQL session taking the same locks in the same order as placeOrder.
 */
const run = runId();
const TOKEN = "contention-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let pool: pg.Pool;
let redis: Redis;
const closers: Array<() => Promise<unknown>> = [];

async function build(statementTimeoutMs: number): Promise<FastifyInstance> {
  const db: Db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2, statementTimeoutMs });
  const app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("catalog-contention-test", "silent"),
    metrics: createMetricsRegistry("catalog-contention-test"),
    adminToken: TOKEN,
    cache: { schemaVersion: 9_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
  });
  closers.push(
    () => app.close(),
    () => db.$disconnect(),
  );
  return app;
}

/** Backends of this database waiting for a lock while running a statement that contains `text`. */
async function waitingOnLock(text: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
    [text],
  );
  return Number(rows[0]?.n ?? 0);
}

beforeAll(() => {
  pool = pgPool();
  redis = redisClient();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await Promise.all([pool.end(), redis.quit()]);
});

describe("admin writes under lock contention (real Postgres)", () => {
  it("DELETE /admin/products/:id that loses a deadlock to a checkout is repeated, not answered 500", async () => {
    const app = await build(5_000);
    const p = await insertProduct(pool, { sku: `CONT-${run}-del`, listPriceCents: 700, stock: 5 });
    const { rows } = await pool.query<{ id: string }>("INSERT INTO carts (user_id) VALUES ($1) RETURNING id::text", [`cont-${run}`]);
    const cartId = rows[0]?.id as string;
    await pool.query("INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen) VALUES ($1, $2, 1, 700, 1)", [
      cartId,
      p.id,
    ]);

    const checkout = await pool.connect();
    try {
      // placeOrder's order: the cart row first ...
      await checkout.query("BEGIN");
      await checkout.query("SELECT 1 FROM carts WHERE id = $1 FOR NO KEY UPDATE", [cartId]);
      const deleted = app.inject({ method: "DELETE", url: `/admin/products/${p.id}`, headers: admin });
      // ... the DELETE holds the product row and its cascade waits for the cart ...
      await waitFor(async () => ((await waitingOnLock("DELETE FROM products")) > 0 ? true : undefined), {
        timeoutMs: 5_000,
        intervalMs: 20,
        what: "the DELETE waiting for the cart row",
      });
      // ... then the product rows FOR SHARE: a cycle. The DELETE waited first, so its deadlock
      // check (deadlock_timeout) runs first and rolls it back.
      await checkout.query("SELECT 1 FROM products WHERE id = $1 FOR SHARE", [p.id]);
      await checkout.query("ROLLBACK");
      const res = await deleted;
      expect([res.statusCode, res.json()]).toEqual([200, { id: p.id, cartLinesRemoved: 1 }]);
    } finally {
      await checkout.query("ROLLBACK").catch(() => {});
      checkout.release();
    }
    const gone = await pool.query("SELECT 1 FROM products WHERE id = $1", [p.id]);
    expect(gone.rowCount).toBe(0);
  }, 20_000);

  it("a write cut by the statement timeout while waiting for a lock is 503 OVERLOADED with Retry-After", async () => {
    const app = await build(300);
    const p = await insertProduct(pool, { sku: `CONT-${run}-timeout`, listPriceCents: 700, stock: 5 });
    const holder = await pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", [p.id]);
      const res = await app.inject({
        method: "PUT",
        url: `/admin/products/${p.id}/price`,
        headers: admin,
        payload: { listPriceCents: 900 },
      });
      expect([res.statusCode, res.json().error, res.headers["retry-after"]]).toEqual([503, "OVERLOADED", "1"]);
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
  });
});
