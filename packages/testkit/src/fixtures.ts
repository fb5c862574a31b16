import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { TEST_ENV } from "./env.ts";

export function pgPool(url = TEST_ENV.databaseUrl, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000, statement_timeout: 10_000 });
  pool.on("error", () => {}); // an idle client lost with a killed Postgres must not crash the process
  return pool;
}

export function redisClient(url = TEST_ENV.redisUrl): Redis {
  const r = new Redis(url, { commandTimeout: 2_000, connectTimeout: 2_000, lazyConnect: false });
  r.on("error", () => {}); // tests that kill Redis assert on outcomes, not on log noise
  return r;
}

/** A unique prefix per test run, so suites never see each other's rows. */
export function runId(): string {
  return randomUUID().slice(0, 8);
}

export interface TestProduct {
  id: number;
  sku: string;
}

/** Inserts products (with stock) directly in SQL, returns their ids. */
export async function insertProducts(
  pool: pg.Pool,
  rows: Array<{ sku: string; listPriceCents: number; stock: number; sale?: { priceCents: number; startsAt: Date; endsAt: Date } }>,
): Promise<TestProduct[]> {
  const out: TestProduct[] = [];
  for (const r of rows) {
    const { rows: inserted } = await pool.query<{ id: string }>(
      `WITH p AS (
         INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
         VALUES ($1, $1, $2, $3, $4, $5) RETURNING id
       ), i AS (INSERT INTO inventory (product_id, available) SELECT id, $6 FROM p)
       SELECT id FROM p`,
      [r.sku, r.listPriceCents, r.sale?.priceCents ?? null, r.sale?.startsAt ?? null, r.sale?.endsAt ?? null, r.stock],
    );
    out.push({ id: Number(inserted[0]?.id), sku: r.sku });
  }
  return out;
}

export async function insertProduct(pool: pg.Pool, row: Parameters<typeof insertProducts>[1][number]): Promise<TestProduct> {
  const [p] = await insertProducts(pool, [row]);
  if (!p) throw new Error("insert returned no product");
  return p;
}
/**
 * Postgres executions of the catalog's product-by-id read (pg_stat_statements), to count DB reads.
 * pg_stat_statements covers the whole cluster: only this pool's database counts (the served stack
 * and other runs share the cluster).
 */
export async function productReadCount(pool: pg.Pool): Promise<number> {
  await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  const { rows } = await pool.query<{ calls: string }>(
    `SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query LIKE '%product_next_price_boundary(p, now()) AS valid_until%' AND query LIKE '%WHERE p.id = $1%'`,
  );
  return Number(rows[0]?.calls ?? 0);
}

/** p-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
