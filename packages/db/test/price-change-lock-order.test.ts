import { randomUUID } from "node:crypto";
import { pgPool, TEST_ENV, waitFor } from "@flashsale/testkit";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// docs/architecture.md "Checkout invariant" item 5: a price change waits for the checkouts holding
// the product's stock row. Checkout batches (checkout_place_orders) lock their stock rows in product
// id order; a price change of several products in one statement (an import, a sale on many products)
// must take them in the same order, or it deadlocks with a batch (migration 20261127010300).

let owner: pg.Pool;
const ids: number[] = [];

beforeAll(async () => {
  owner = pgPool(TEST_ENV.databaseUrl, 2);
  const tag = randomUUID();
  const { rows } = await owner.query<{ id: string }>(
    `WITH p AS (INSERT INTO products (sku, name, list_price_cents)
                SELECT 'lock-order-' || $1 || '-' || g, 'lock order', 1000 FROM generate_series(1, 2) g RETURNING id),
          i AS (INSERT INTO inventory (product_id, available) SELECT id, 10 FROM p)
     SELECT id::text FROM p ORDER BY id`,
    [tag],
  );
  ids.push(...rows.map((r) => Number(r.id)));
});
afterAll(async () => {
  if (ids.length) await owner.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [ids]);
  await owner.end();
});

describe("price change vs checkout lock order", () => {
  it("an import-style UPDATE changing B then A does not deadlock with a batch holding A and wanting B", async () => {
    const [a, b] = ids as [number, number];
    const batch = new pg.Client({ connectionString: TEST_ENV.databaseUrl });
    const importer = new pg.Client({ connectionString: TEST_ENV.databaseUrl });
    await Promise.all([batch.connect(), importer.connect()]);
    try {
      // The batch's lock order (checkout_place_orders step 3): stock rows in product id order, A first.
      await batch.query("BEGIN");
      await batch.query("SELECT 1 FROM inventory WHERE product_id = $1 FOR NO KEY UPDATE", [a]);
      // The import's plan on a products table of real size: a nested loop over the file's rows with
      // the sku index (a small table would get a hash join in table order instead).
      await importer.query("SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off");
      const importerPid = (await importer.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
      // One statement changing B's price before A's: the import's statement (importListPrices) with
      // the file listing B first; its rows come in the file's order.
      const { rows: skus } = await owner.query<{ sku: string }>("SELECT sku FROM products WHERE id = ANY($1::bigint[]) ORDER BY id DESC", [
        [a, b],
      ]);
      const update = importer
        .query(
          `WITH input AS (SELECT * FROM unnest($1::text[], $2::int[]) AS v(sku, price))
           UPDATE products p SET list_price_cents = input.price FROM input
            WHERE p.sku = input.sku AND p.list_price_cents IS DISTINCT FROM input.price`,
          [skus.map((r) => r.sku), [1001, 1001]],
        )
        .then(
          () => "ok",
          (err: { code?: string }) => String(err.code),
        );
      await waitFor(
        async () => {
          const { rows } = await owner.query<{ w: string | null }>("SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1", [
            importerPid,
          ]);
          return rows[0]?.w === "Lock" ? true : undefined;
        },
        { timeoutMs: 5_000, what: "the price change waiting for the batch's stock row" },
      );
      // The batch now wants B (the next stock row in id order). With the rows taken in the UPDATE's
      // order the importer already holds B and waits for A: deadlock (40P01) after deadlock_timeout.
      const second = await batch.query("SELECT 1 FROM inventory WHERE product_id = $1 FOR NO KEY UPDATE", [b]).then(
        () => "ok",
        (err: { code?: string }) => String(err.code),
      );
      await batch.query(second === "ok" ? "COMMIT" : "ROLLBACK");
      expect({ batch: second, priceChange: await update }).toEqual({ batch: "ok", priceChange: "ok" });
    } finally {
      await Promise.all([batch.end(), importer.end()]);
    }
  });
});
