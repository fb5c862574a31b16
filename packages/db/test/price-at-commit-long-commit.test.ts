import { randomUUID } from "node:crypto";
import { pgPool, TEST_ENV } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// docs/architecture.md "Checkout invariant" item 4: every order line is checked against the
// effective price when its transaction commits. The deferred trigger fires once per line, in the
// order the lines were written; a transaction with many lines (a batch of 64 carts of 100 lines is
// 6,400) spends tens to hundreds of milliseconds in those triggers, so a line checked first was
// checked that long before the COMMIT. Reproduced with checkout_place_orders itself: a 64 x 100-line
// batch committed list-price lines 5-45 ms after the sale had started (4 of 30 runs, the project's
// order audit flags them). Migration 20261127010400 checks every line again once the last one is.

let owner: pg.Pool;
const productIds: number[] = [];
const orderIds: string[] = [];

beforeAll(async () => {
  owner = pgPool(TEST_ENV.databaseUrl, 3);
  const tag = randomUUID();
  const { rows } = await owner.query<{ id: string }>(
    `INSERT INTO products (sku, name, list_price_cents)
     SELECT 'long-commit-' || $1 || '-' || g, 'long commit', 1000 FROM generate_series(1, 100) g RETURNING id`,
    [tag],
  );
  productIds.push(...rows.map((r) => Number(r.id)).sort((a, b) => a - b));
});
afterAll(async () => {
  if (orderIds.length) await owner.query("DELETE FROM orders WHERE id = ANY($1::uuid[])", [orderIds]);
  if (productIds.length) await owner.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [productIds]);
  await owner.end();
});

describe("price at commit, long commit", () => {
  it("a line checked early in a long commit is refused if a sale starts before that COMMIT ends", async () => {
    const [onSale, ...others] = productIds as [number, ...number[]];
    const writer = await owner.connect();
    try {
      await writer.query("BEGIN");
      // The line on the product about to go on sale is written (and so checked) first, then
      // 100,000 lines on other products at their (unchanging) list price.
      const first = randomUUID();
      orderIds.push(first);
      await writer.query("INSERT INTO orders (id, cart_id, total_cents) VALUES ($1, gen_random_uuid(), 1000)", [first]);
      await writer.query("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES ($1, $2, 1, 1000)", [
        first,
        onSale,
      ]);
      const bulk = Array.from({ length: 1_010 }, () => randomUUID());
      orderIds.push(...bulk);
      await writer.query("INSERT INTO orders (id, cart_id, total_cents) SELECT id, gen_random_uuid(), 99000 FROM unnest($1::uuid[]) id", [
        bulk,
      ]);
      await writer.query(
        `INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
         SELECT o, p, 1, 1000 FROM unnest($1::uuid[]) o, unnest($2::bigint[]) p`,
        [bulk, others],
      );
      // The sale starts 100 ms from now: after the first line's check, before the COMMIT is done.
      await owner.query(
        `UPDATE products SET sale_price_cents = 500, sale_starts_at = clock_timestamp() + interval '100 milliseconds',
                sale_ends_at = clock_timestamp() + interval '1 hour' WHERE id = $1`,
        [onSale],
      );
      const t0 = Date.now();
      const commit = await writer.query("COMMIT").then(
        () => "committed",
        (err: { code?: string }) => String(err.code),
      );
      const commitMs = Date.now() - t0;
      const { rows } = await owner.query<{ committed_at: Date; starts: Date }>(
        `SELECT pg_xact_commit_timestamp(o.xmin) AS committed_at, p.sale_starts_at AS starts
           FROM orders o, products p WHERE o.id = $1 AND p.id = $2`,
        [first, onSale],
      );
      // The run is only meaningful when the COMMIT outlasted the sale's start.
      if (commit === "committed") expect(rows[0] && rows[0].committed_at >= rows[0].starts).toBe(true);
      else expect(commitMs).toBeGreaterThan(100);
      // A list-price line must not commit after the sale started: the COMMIT is refused (FS409).
      expect(commit).toBe("FS409");
    } finally {
      await writer.query("ROLLBACK").catch(() => {});
      writer.release();
    }
  }, 120_000);
});
