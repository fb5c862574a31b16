/**
 * The checkout benchmark (docs/architecture.md#checkout-invariant), against the real
 * Postgres + Redis: checkout throughput and latency for a rush of buyers, one hot SKU vs 1,000 SKUs, with our flow (with and
 * without the Redis stock gate) and a naive SELECT ... FOR UPDATE checkout, all in one
 * run. Checkouts run in-process (no HTTP) with a fixed number of concurrent buyers, so
 * what differs between modes is only the checkout itself.
 *
 *   pnpm exec tsx bench/checkout-rush.ts [buyers=2000] [concurrency=64]
 *
 * Writes bench/results/checkout-rush.{json,md}.
 */
import { writeFile } from "node:fs/promises";
import { StockGate } from "@flashsale/cache";
import { checkout } from "@flashsale/checkout";
import { createDb } from "@flashsale/db";
import { createLogger } from "@flashsale/telemetry";
import { insertProducts, percentile, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import { bulkhead } from "cockatiel";
import { naiveCheckout } from "./naive-checkout.ts";

const BUYERS = Number(process.argv[2] ?? 2000);
const CONCURRENCY = Number(process.argv[3] ?? 64);
const POOL = 10;
const pool = pgPool(TEST_ENV.databaseUrl, 20);
const redis = redisClient();
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: POOL, statementTimeoutMs: 30_000 });
const logger = createLogger("bench", "warn");
await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");

type Mode = "gate" | "no gate" | "naive FOR UPDATE";
interface Scenario {
  name: string;
  skus: number;
  stockPerSku: number;
}
const scenarios: Scenario[] = [
  { name: "1 hot SKU", skus: 1, stockPerSku: Math.floor(BUYERS / 4) },
  { name: "1,000 SKUs", skus: 1000, stockPerSku: 1000 },
];

async function statementCalls(): Promise<{ statements: number; transactions: number }> {
  const { rows } = await pool.query<{ statements: string; transactions: string }>(
    `SELECT coalesce(sum(calls), 0) AS statements,
            coalesce(sum(calls) FILTER (WHERE query ILIKE 'BEGIN%'), 0) AS transactions
     FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return { statements: Number(rows[0]?.statements), transactions: Number(rows[0]?.transactions) };
}

async function runOne(s: Scenario, mode: Mode) {
  const tag = runId();
  const products = await insertProducts(
    pool,
    Array.from({ length: s.skus }, (_, i) => ({ sku: `RUSH-${tag}-${i}`, listPriceCents: 500, stock: s.stockPerSku })),
  );
  // Carts are prepared before the clock starts: we measure checkout only.
  const { rows: carts } = await pool.query<{ id: string }>(
    `INSERT INTO carts (user_id) SELECT 'u' || g FROM generate_series(1, $1) g RETURNING id::text`,
    [BUYERS],
  );
  await pool.query(
    `INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
     SELECT c.id, ($2::bigint[])[1 + (row_number() OVER ()) % array_length($2::bigint[], 1)], 1, 500, 1
     FROM unnest($1::uuid[]) AS c(id)`,
    [carts.map((c) => c.id), products.map((p) => p.id)],
  );
  const flow = { db, gate: mode === "gate" ? new StockGate(redis) : null, transactions: bulkhead(POOL, 100_000), logger };
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const before = await statementCalls();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < carts.length) {
        const cart = carts[next++] as { id: string };
        const t0 = performance.now();
        const kind =
          mode === "naive FOR UPDATE"
            ? await naiveCheckout(db, cart.id)
            : (await checkout(flow, { cartId: cart.id, principal: null, idempotencyKey: `rush-${cart.id}` })).kind;
        latencies.push(performance.now() - t0);
        outcomes[kind] = (outcomes[kind] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const after = await statementCalls();
  const { rows: check } = await pool.query<{ oversold: number }>(
    `SELECT count(*)::int AS oversold FROM inventory WHERE product_id = ANY($1) AND available < 0`,
    [products.map((p) => p.id)],
  );
  const placed = outcomes.placed ?? 0;
  return {
    scenario: s.name,
    mode,
    buyers: BUYERS,
    placed,
    outOfStock: outcomes.out_of_stock ?? 0,
    ordersPerSec: Math.round(placed / seconds),
    checkoutsPerSec: Math.round(BUYERS / seconds),
    p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    dbTransactionsPerOrder: placed ? Math.round(((after.transactions - before.transactions) / placed) * 100) / 100 : null,
    dbStatementsPerCheckout: Math.round(((after.statements - before.statements) / BUYERS) * 100) / 100,
    oversoldSkus: check[0]?.oversold ?? 0,
  };
}

const results = [];
for (const s of scenarios) {
  for (const mode of ["gate", "no gate", "naive FOR UPDATE"] as Mode[]) {
    const r = await runOne(s, mode);
    console.log(JSON.stringify(r));
    results.push(r);
  }
}

const summary = { measuredAt: new Date().toISOString(), buyers: BUYERS, concurrency: CONCURRENCY, dbPool: POOL, results };
await writeFile(new URL("./results/checkout-rush.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Checkout rush (${summary.measuredAt})`,
  "",
  `${BUYERS} buyers, ${CONCURRENCY} concurrent, DB pool ${POOL}, in-process (no HTTP); hot SKU stock = buyers / 4, 1,000 SKUs with ample stock. Same run, same machine.`,
  "",
  "| scenario | mode | orders | orders/s | checkouts/s | p50 ms | p99 ms | DB tx / order | DB statements / checkout | oversold SKUs |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...results.map(
    (r) =>
      `| ${r.scenario} | ${r.mode} | ${r.placed} | ${r.ordersPerSec} | ${r.checkoutsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.dbTransactionsPerOrder} | ${r.dbStatementsPerCheckout} | ${r.oversoldSkus} |`,
  ),
  "",
];
await writeFile(new URL("./results/checkout-rush.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
await Promise.all([pool.end(), redis.quit(), db.$disconnect()]);
