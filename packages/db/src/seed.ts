import pg from "pg";

export interface SeedOptions {
  products: number;
  stockPerProduct: number;
  /** Every n-th product gets an active sale (a week long, 20 % off). */
  saleEvery: number;
}

export const DEFAULT_SEED: SeedOptions = { products: 10_000, stockPerProduct: 1_000, saleEvery: 100 };

/** Idempotent: SKUs SEED-000001.. are inserted only if absent; returns rows inserted. */
export async function seed(databaseUrl: string, opts: SeedOptions = DEFAULT_SEED): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query(
      `WITH inserted AS (
         INSERT INTO products (sku, name, description, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
         SELECT 'SEED-' || lpad(g::text, 6, '0'),
                'Product ' || g,
                'Seeded product number ' || g,
                1000 + (g * 37) % 9000,
                CASE WHEN g % $3 = 0 THEN (1000 + (g * 37) % 9000) * 8 / 10 END,
                CASE WHEN g % $3 = 0 THEN now() - interval '1 hour' END,
                CASE WHEN g % $3 = 0 THEN now() + interval '7 days' END
         FROM generate_series(1, $1::int) AS g
         ON CONFLICT (sku) DO NOTHING
         RETURNING id
       )
       INSERT INTO inventory (product_id, available) SELECT id, $2 FROM inserted`,
      [opts.products, opts.stockPerProduct, opts.saleEvery],
    );
    return rowCount ?? 0;
  } finally {
    await client.end();
  }
}
