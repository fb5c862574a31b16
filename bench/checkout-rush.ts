/**
 * The checkout benchmark (docs/architecture.md#checkout-invariant, README "Checkout benchmark"),
 * against the real Postgres + Redis, in-process (no HTTP), everything in ONE run so the figures
 * are ratios on the same (shared, 2-core) machine:
 *   - pgbench's single-row rate: autocommit conditional decrements of one row, 10 clients
 *     (what Postgres itself can do on one hot row);
 *   - 1 hot SKU, 10 hot SKUs, 1,000 SKUs x modes: the new flow (group commit, with and without
 *     the stock gate), one checkout per statement (the same SQL function without batching),
 *     today's flow (main before issue 11, bench/checkout-legacy.ts, with its gate) and the naive
 *     SELECT ... FOR UPDATE checkout.
 *
 *   pnpm exec tsx bench/checkout-rush.ts [buyers=2000] [concurrency=64]
 *
 * Writes bench/results/checkout-rush.{json,md}.
 */
import { writeFile } from "node:fs/promises";
import { StockGate } from "@flashsale/cache";
import { checkout } from "@flashsale/checkout";
import { createDb, groupCommit, type OrderPlacer, placeOrder } from "@flashsale/db";
import { createLogger } from "@flashsale/telemetry";
import { insertProducts, percentile, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import { bulkhead } from "cockatiel";
import { legacyPlaceOrder } from "./checkout-legacy.ts";
import { pgbenchSingleRow, sampleWaits } from "./checkout-lib.ts";
import { naiveCheckout } from "./naive-checkout.ts";

const BUYERS = Number(process.argv[2] ?? 2000);
const CONCURRENCY = Number(process.argv[3] ?? 64);
const POOL = 10;
const ONLY = process.env.BENCH_ONLY; // e.g. "1 hot SKU" while iterating
const pool = pgPool(TEST_ENV.databaseUrl, 20);
const redis = redisClient();
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: POOL, statementTimeoutMs: 30_000 });
const logger = createLogger("bench", "warn");
// Statement counts need pg_stat_statements (present on the test database; a private one may lack it).
const hasStatements = await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").then(
  () => true,
  () => false,
);

type Mode =
  | "group commit + gate"
  | "group commit"
  | "group commit, 1 lane"
  | "one statement per checkout"
  | "today's flow + gate"
  | "naive FOR UPDATE";
const MODES: Mode[] = (process.env.BENCH_MODES?.split(";") as Mode[] | undefined) ?? [
  "group commit + gate",
  "group commit",
  "group commit, 1 lane",
  "one statement per checkout",
  "today's flow + gate",
  "naive FOR UPDATE",
];
interface Scenario {
  name: string;
  skus: number;
  stockPerSku: number;
}
const scenarios: Scenario[] = [
  { name: "1 hot SKU", skus: 1, stockPerSku: Math.floor(BUYERS / 4) },
  { name: "10 hot SKUs", skus: 10, stockPerSku: Math.floor(BUYERS / 40) },
  { name: "1,000 SKUs", skus: 1000, stockPerSku: 1000 },
].filter((s) => !ONLY || s.name === ONLY);

async function statementCalls(): Promise<{ statements: number; transactions: number }> {
  if (!hasStatements) return { statements: Number.NaN, transactions: Number.NaN };
  const { rows } = await pool.query<{ statements: string; transactions: string }>(
    `SELECT coalesce(sum(calls), 0) AS statements,
            coalesce(sum(calls) FILTER (WHERE query ILIKE 'BEGIN%' OR query ILIKE '%checkout_place_orders%'), 0) AS transactions
     FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return { statements: Number(rows[0]?.statements), transactions: Number(rows[0]?.transactions) };
}

function placerFor(mode: Mode): OrderPlacer | null {
  if (mode === "group commit + gate" || mode === "group commit") return groupCommit(db, { lanes: 2, maxBatch: 64 });
  if (mode === "group commit, 1 lane") return groupCommit(db, { lanes: 1, maxBatch: 64 });
  if (mode === "one statement per checkout") return { place: (req) => placeOrder(db, req) };
  if (mode === "today's flow + gate") return { place: (req) => legacyPlaceOrder(db, req) };
  return null;
}

async function runOne(s: Scenario, mode: Mode, warmUp = false) {
  const tag = runId();
  if (!warmUp) {
    // Untimed: the same mode on its own product first, so every pooled connection has planned
    // the statements (plpgsql plans on first execution per connection) before the clock starts.
    await runOne({ name: "warm-up", skus: 1, stockPerSku: 50 }, mode, true);
  }
  const buyers = warmUp ? 200 : BUYERS;
  const products = await insertProducts(
    pool,
    Array.from({ length: s.skus }, (_, i) => ({ sku: `RUSH-${tag}-${i}`, listPriceCents: 500, stock: s.stockPerSku })),
  );
  // Carts are prepared before the clock starts: we measure checkout only.
  const { rows: carts } = await pool.query<{ id: string }>(
    `INSERT INTO carts (user_id) SELECT NULL FROM generate_series(1, $1) g RETURNING id::text`,
    [buyers],
  );
  await pool.query(
    `INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
     SELECT c.id, ($2::bigint[])[1 + (row_number() OVER ()) % array_length($2::bigint[], 1)], 1, 500, 1
     FROM unnest($1::uuid[]) AS c(id)`,
    [carts.map((c) => c.id), products.map((p) => p.id)],
  );
  const placer = placerFor(mode);
  const gate = mode.endsWith("+ gate") ? new StockGate(redis) : null;
  const flow = placer ? { db, gate, orders: placer, transactions: bulkhead(100_000, 100_000), logger } : null;
  const latencies: number[] = [];
  const placedLatencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const before = await statementCalls();
  const waits = sampleWaits(pool);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < carts.length) {
        const cart = carts[next++] as { id: string };
        const t0 = performance.now();
        const kind = flow
          ? (await checkout(flow, { cartId: cart.id, principal: null, idempotencyKey: `rush-${cart.id}` })).kind
          : await naiveCheckout(db, cart.id);
        const ms = performance.now() - t0;
        latencies.push(ms);
        if (kind === "placed") placedLatencies.push(ms);
        outcomes[kind] = (outcomes[kind] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const waitEvents = await waits.stop();
  const after = await statementCalls();
  const { rows: check } = await pool.query<{ oversold: number; sold: number; stock: number }>(
    `SELECT count(*) FILTER (WHERE i.available < 0)::int AS oversold,
            (SELECT coalesce(sum(quantity), 0)::int FROM order_items WHERE product_id = ANY($1)) AS sold,
            sum(i.available)::int AS stock
     FROM inventory i WHERE i.product_id = ANY($1)`,
    [products.map((p) => p.id)],
  );
  const placed = outcomes.placed ?? 0;
  const c = check[0] ?? { oversold: -1, sold: -1, stock: -1 };
  return {
    scenario: s.name,
    mode,
    buyers,
    placed,
    outOfStock: outcomes.out_of_stock ?? 0,
    other: Object.fromEntries(Object.entries(outcomes).filter(([k]) => k !== "placed" && k !== "out_of_stock")),
    ordersPerSec: Math.round(placed / seconds),
    checkoutsPerSec: Math.round(buyers / seconds),
    p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    placedP99Ms: Math.round(percentile(placedLatencies, 99) * 10) / 10,
    dbTransactionsPerOrder: placed ? Math.round(((after.transactions - before.transactions) / placed) * 100) / 100 : null,
    dbStatementsPerCheckout: Math.round(((after.statements - before.statements) / buyers) * 100) / 100,
    // Units sold + units left must equal the units stocked: no oversell, nothing lost.
    unitsConsistent: c.sold + c.stock === s.stockPerSku * s.skus,
    oversoldSkus: c.oversold,
    waitEvents,
  };
}

const pgbench = await pgbenchSingleRow(pool);
console.log(JSON.stringify({ pgbench }));

const results: Awaited<ReturnType<typeof runOne>>[] = [];
for (const s of scenarios) {
  for (const mode of MODES) {
    const r = await runOne(s, mode);
    console.log(JSON.stringify(r));
    results.push(r);
  }
}

const naiveOf = (scenario: string) => results.find((r) => r.scenario === scenario && r.mode === "naive FOR UPDATE")?.ordersPerSec;
const summary = {
  measuredAt: new Date().toISOString(),
  machine: "2 cores shared with other engineers' work (tests, builds): absolute numbers are noisy, compare within this run",
  buyers: BUYERS,
  concurrency: CONCURRENCY,
  dbPool: POOL,
  pgbenchSingleRow: pgbench,
  results,
};
await writeFile(new URL("./results/checkout-rush.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const topWaits = (w: Record<string, number>) =>
  Object.entries(w)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
const md = [
  `# Checkout rush (${summary.measuredAt})`,
  "",
  `${BUYERS} buyers, ${CONCURRENCY} concurrent, DB pool ${POOL}, in-process (no HTTP); hot SKUs' stock = buyers / 4 in all, 1,000 SKUs with ample stock. One run, one machine (${summary.machine}).`,
  "",
  pgbench
    ? `pgbench single-row rate, same run: **${pgbench.tps} tps** (\`${pgbench.command}\`, autocommit \`UPDATE ... SET available = available - 1 WHERE id = 1 AND available >= 1\`).`
    : "pgbench: not found",
  "",
  "| scenario | mode | orders | orders/s | × naive | checkouts/s | p50 ms | p99 ms | p99 placed ms | DB tx / order | statements / checkout | units consistent | wait events (samples) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...results.map((r) => {
    const naive = naiveOf(r.scenario);
    const ratio = naive ? Math.round((r.ordersPerSec / naive) * 10) / 10 : "";
    return `| ${r.scenario} | ${r.mode} | ${r.placed} | ${r.ordersPerSec} | ${ratio} | ${r.checkoutsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.placedP99Ms} | ${r.dbTransactionsPerOrder} | ${r.dbStatementsPerCheckout} | ${r.unitsConsistent} | ${topWaits(r.waitEvents)} |`;
  }),
  "",
];
await writeFile(new URL("./results/checkout-rush.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
await Promise.all([pool.end(), redis.quit(), db.$disconnect()]);
