import { pgPool, TEST_ENV } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, readMigrations } from "../src/migrate.ts";

// Runs against the scratch database: these tests drop and recreate its schema.
const url = TEST_ENV.scratchDatabaseUrl;
let pool: pg.Pool;

async function resetScratch(): Promise<void> {
  await pool.query("DROP PUBLICATION IF EXISTS flashsale_pub");
  await pool.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
}

beforeAll(async () => {
  pool = pgPool(url, 2);
  await resetScratch();
});
afterAll(async () => {
  await pool.end();
});

describe("migrate", () => {
  it("applies every migration once and records it like prisma migrate deploy", async () => {
    const first = await migrate(url);
    const all = (await readMigrations()).map((m) => m.name);
    expect(first.applied).toEqual(all);
    const second = await migrate(url);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(all);
    const { rows } = await pool.query(`SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name`);
    expect(rows.map((r) => r.migration_name)).toEqual(all);
    expect(rows.every((r) => r.finished_at !== null && /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true);
  });

  it("refuses a migration edited after it was applied", async () => {
    const [m] = await readMigrations();
    if (!m) throw new Error("no migrations");
    await expect(migrate(url, [{ ...m, checksum: "0".repeat(64) }])).rejects.toThrow(/modified after it was applied/);
  });

  it("rolls a failing migration back completely", async () => {
    const bad = { name: "29991231000000_broken", sql: "CREATE TABLE half_done (id int); SELECT no_such_function();", checksum: "x" };
    await expect(migrate(url, [bad])).rejects.toThrow(/29991231000000_broken failed/);
    const { rows } = await pool.query("SELECT to_regclass('half_done') AS t");
    expect(rows[0].t).toBeNull();
    const recorded = await pool.query(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = $1`, [bad.name]);
    expect(recorded.rowCount).toBe(0);
  });
});

describe("schema behaviour", () => {
  it("bumps version on every UPDATE, including raw SQL that tries to set it", async () => {
    // Versions come from one sequence (docs/architecture.md "Invalidation"): they only grow, per row and across re-inserts.
    const { rows } = await pool.query(`INSERT INTO products (sku, name, list_price_cents) VALUES ('V-1', 'v', 100) RETURNING id, version`);
    const inserted = Number(rows[0].version);
    expect(inserted).toBeGreaterThanOrEqual(1);
    const first = await pool.query("UPDATE products SET list_price_cents = 200 WHERE id = $1 RETURNING version", [rows[0].id]);
    expect(Number(first.rows[0].version)).toBeGreaterThan(inserted);
    await pool.query("UPDATE products SET version = 1, list_price_cents = 300 WHERE id = $1", [rows[0].id]);
    const after = await pool.query("SELECT version FROM products WHERE id = $1", [rows[0].id]);
    expect(Number(after.rows[0].version)).toBeGreaterThan(Number(first.rows[0].version));
  });

  it("computes the effective price and the next boundary around a sale window", async () => {
    const { rows } = await pool.query(
      `INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
       VALUES ('S-1', 's', 1000, 700, '2030-01-01T00:00:00Z', '2030-01-02T00:00:00Z') RETURNING id`,
    );
    const at = async (ts: string) =>
      (
        await pool.query(
          `SELECT product_effective_price_cents(p, $2::timestamptz) AS price, product_next_price_boundary(p, $2::timestamptz) AS boundary
           FROM products p WHERE id = $1`,
          [rows[0].id, ts],
        )
      ).rows[0];
    expect(await at("2029-12-31T23:59:59Z")).toEqual({ price: 1000, boundary: new Date("2030-01-01T00:00:00Z") });
    expect(await at("2030-01-01T00:00:00Z")).toEqual({ price: 700, boundary: new Date("2030-01-02T00:00:00Z") });
    // The window is half-open: at endsAt the list price is back.
    expect(await at("2030-01-02T00:00:00Z")).toEqual({ price: 1000, boundary: null });
  });

  it("rejects negative stock and half-defined sales", async () => {
    const { rows } = await pool.query(`INSERT INTO products (sku, name, list_price_cents) VALUES ('C-1', 'c', 100) RETURNING id`);
    await expect(pool.query("INSERT INTO inventory (product_id, available) VALUES ($1, -1)", [rows[0].id])).rejects.toThrow(
      /inventory_available_nonneg/,
    );
    await expect(pool.query("UPDATE products SET sale_price_cents = 50 WHERE id = $1", [rows[0].id])).rejects.toThrow(
      /products_sale_complete/,
    );
  });
});
