/**
 * Invalidation lag of the running stack (scripts/up): time from a Postgres COMMIT
 * (acknowledged to the writer) until the product's Redis key is gone, over N
 * sequential updates made with plain SQL (not through the app).
 *
 *   pnpm exec tsx bench/invalidation-lag.ts [updates=300]
 *
 * Writes bench/results/invalidation-lag.{json,md}; `pnpm exec tsx bench/charts.ts` draws its distribution.
 */
import { writeFile } from "node:fs/promises";
import { productKeys } from "@flashsale/product-cache";
import { insertProduct, percentile, pgPool, redisClient, runId } from "@flashsale/testkit";

const N = Number(process.argv[2] ?? 300);
const CATALOG = process.env.CATALOG_URL ?? "http://127.0.0.1:3001";
const pool = pgPool();
const redis = redisClient();

const p = await insertProduct(pool, { sku: `BENCH-LAG-${runId()}`, listPriceCents: 1000, stock: 1 });
const key = productKeys(Number(process.env.CACHE_SCHEMA_VERSION ?? 1), p.id).value;
const lags: number[] = [];

for (let i = 0; i < N; i++) {
  // Fill the cache through the catalog, exactly as a shopper's read would.
  for (let tries = 0; (await redis.exists(key)) === 0; tries++) {
    if (tries > 200) throw new Error("catalog did not fill the cache; is scripts/up running?");
    await fetch(`${CATALOG}/products/${p.id}`, { signal: AbortSignal.timeout(2_000) });
  }
  await pool.query("UPDATE products SET list_price_cents = $1 WHERE id = $2", [1000 + (i % 500), p.id]);
  const committed = performance.now();
  const deadline = committed + 10_000;
  while ((await redis.exists(key)) === 1) {
    if (performance.now() > deadline) throw new Error(`update ${i}: key still cached after 10 s`);
  }
  lags.push(performance.now() - committed);
}

const round = (x: number) => Math.round(x * 10) / 10;
const summary = {
  measuredAt: new Date().toISOString(),
  updates: N,
  method: "sequential UPDATE via pg; lag = COMMIT acknowledged -> Redis EXISTS returns 0 (busy-polled)",
  ms: {
    p50: round(percentile(lags, 50)),
    p90: round(percentile(lags, 90)),
    p99: round(percentile(lags, 99)),
    max: round(Math.max(...lags)),
    min: round(Math.min(...lags)),
  },
  /** Every measured lag in run order, for the distribution chart (bench/charts.ts). */
  samplesMs: lags.map(round),
};
await writeFile(new URL("./results/invalidation-lag.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
await writeFile(
  new URL("./results/invalidation-lag.md", import.meta.url),
  `# Invalidation lag (commit -> key gone)\n\n${summary.measuredAt}, ${N} updates, ${summary.method}.\n\n| p50 | p90 | p99 | max |\n|---|---|---|---|\n| ${summary.ms.p50} ms | ${summary.ms.p90} ms | ${summary.ms.p99} ms | ${summary.ms.max} ms |\n`,
);
console.log(JSON.stringify(summary, null, 2));
await pool.end();
await redis.quit();
