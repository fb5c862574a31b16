/**
 * A sale boundary under read load (docs/architecture.md#price-schedule-and-the-db-clock): 2,000
 * products go on sale at the same instant (DB clock) while a catalog serves random reads across all
 * of them. Counts the Postgres product reads (pg_stat_statements) and the throughput and p99 per
 * 250 ms bucket around the boundary. Before the price schedule was cached, every entry expired at
 * the boundary (TTL capped at validUntil): one Postgres read per product, and a throughput dip.
 *
 *   pnpm exec tsx bench/sale-boundary.ts [label=after] [products=2000]
 *
 * Writes bench/results/sale-boundary-<label>.{json,md}. The catalog is pinned to CPU 0 and the load
 * generator (autocannon, this process, 32 connections) to CPU 1; a private Redis (bench/lib.ts).
 * The "before" row was measured with this benchmark on the main of 2026-11-26 07:52 (schema v1,
 * shared test Redis, unpinned), its boundary metric recomputed from its buckets.
 */
import { writeFile } from "node:fs/promises";
import { percentile, pgPool, productReadCount, runId, spawnService } from "@flashsale/testkit";
import autocannon from "autocannon";
import { pidOnPort, pin, privateRedis } from "./lib.ts";

const LABEL = process.argv[2] ?? "after";
const N = Number(process.argv[3] ?? 2000);
const CONNECTIONS = 32;
const BEFORE_S = 4;
const AFTER_S = 4;
const pool = pgPool();
const priv = await privateRedis();
const tag = runId();
pin(process.pid, 1);
const schema = 7_000 + Math.floor(Math.random() * 1_000);

// The boundary is a DB-clock instant, set far enough ahead to warm every product first.
const { rows: ids } = await pool.query<{ id: string }>(
  `WITH p AS (
     INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
     SELECT 'BOUNDARY-' || $1 || '-' || g, 'boundary bench', 1000, 800, now() + interval '25 seconds', now() + interval '10 minutes'
     FROM generate_series(1, $2::int) g RETURNING id
   ), i AS (INSERT INTO inventory (product_id, available) SELECT id, 1 FROM p)
   SELECT id FROM p`,
  [tag, N],
);
const productIds = ids.map((r) => Number(r.id));
const { rows: b } = await pool.query<{ starts: Date; db_now: Date }>(
  "SELECT sale_starts_at AS starts, clock_timestamp() AS db_now FROM products WHERE id = $1",
  [productIds[0]],
);
// Bench's own estimate of the DB clock (loopback: skew ~0); only used to time the load window.
const offsetMs = (b[0]?.db_now.getTime() ?? 0) - Date.now();
const boundaryAppMs = (b[0]?.starts.getTime() ?? 0) - offsetMs;

const catalog = await spawnService("catalog", 3291, { CACHE_SCHEMA_VERSION: String(schema), REDIS_URL: priv.url });
pin(pidOnPort(3291), 0);
const url = catalog.url;
// Warm every product (each one fill), 16 at a time.
for (let i = 0; i < productIds.length; i += 16) {
  await Promise.all(productIds.slice(i, i + 16).map((id) => fetch(`${url}/products/${id}`).then((r) => r.arrayBuffer())));
}
const warmLeftMs = boundaryAppMs - BEFORE_S * 1000 - Date.now();
if (warmLeftMs < 0) throw new Error(`warm-up ran past the load window by ${-warmLeftMs} ms`);
await new Promise((r) => setTimeout(r, warmLeftMs));

const readsBefore = await productReadCount(pool);
const buckets = new Map<number, { n: number; lat: number[] }>();
let cursor = 0;
let done: (r: autocannon.Result) => void = () => {};
const finished = new Promise<autocannon.Result>((resolve) => {
  done = resolve;
});
const instance = autocannon(
  {
    url,
    connections: CONNECTIONS,
    duration: BEFORE_S + AFTER_S,
    requests: [
      {
        setupRequest: (req) => {
          cursor = (cursor + 7919) % productIds.length;
          return { ...req, path: `/products/${productIds[cursor]}` };
        },
      },
    ],
  },
  (err, r) => {
    if (err) throw err;
    done(r);
  },
);
instance.on("response", (_client, status, _bytes, responseTime) => {
  const k = Math.floor((Date.now() - boundaryAppMs) / 250);
  const bucket = buckets.get(k) ?? { n: 0, lat: [] };
  bucket.n += status === 200 ? 1 : 0;
  bucket.lat.push(responseTime);
  buckets.set(k, bucket);
});
const result = await finished;
const reads = (await productReadCount(pool)) - readsBefore;
await catalog.stop();

const rows = [...buckets.entries()]
  .sort(([a], [c]) => a - c)
  .filter(([k]) => k >= -BEFORE_S * 4 + 1 && k < AFTER_S * 4 - 1)
  .map(([k, v]) => ({ fromBoundaryMs: k * 250, reqPerSec: v.n * 4, p99Ms: percentile(v.lat, 99) }));
const rates = rows.map((r) => r.reqPerSec).sort((x, y) => x - y);
const medianRate = rates[Math.floor(rates.length / 2)] ?? 0;
// The first 500 ms after the boundary, against the window's median 250 ms bucket (the machine is shared: single buckets are noisy).
const near = rows.filter((r) => r.fromBoundaryMs >= 0 && r.fromBoundaryMs < 500);
const summary = {
  label: LABEL,
  measuredAt: new Date().toISOString(),
  products: N,
  connections: CONNECTIONS,
  windowS: BEFORE_S + AFTER_S,
  postgresReads: reads,
  readsPerProduct: Math.round((reads / N) * 1000) / 1000,
  reqPerSec: Math.round(result.requests.average),
  p99Ms: result.latency.p99,
  nearBoundary: {
    reqPerSecVsMedian: Math.round((near.reduce((a, r) => a + r.reqPerSec, 0) / near.length / medianRate) * 100) / 100,
    maxP99Ms: Math.round(Math.max(...near.map((r) => r.p99Ms)) * 10) / 10,
  },
  errors: result.errors + result.non2xx,
  buckets: rows,
};
await pool.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [productIds]);
await pool.end();
await priv.stop();
await writeFile(new URL(`./results/sale-boundary-${LABEL}.json`, import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Sale boundary, ${N} products (${LABEL}, ${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/sale-boundary.ts ${LABEL} ${N}\`: one catalog, autocannon ${CONNECTIONS} connections over all ${N} ids, ${BEFORE_S} s before to ${AFTER_S} s after the sale start (DB clock).`,
  "",
  "| Postgres reads in the window | reads / product | req/s (window) | p99 ms (window) | throughput in the 500 ms after the boundary / window median | p99 in those 500 ms (ms) | errors |",
  "|---|---|---|---|---|---|---|",
  `| ${reads} | ${summary.readsPerProduct} | ${summary.reqPerSec} | ${summary.p99Ms} | ${summary.nearBoundary.reqPerSecVsMedian} | ${summary.nearBoundary.maxP99Ms} | ${summary.errors} |`,
  "",
];
await writeFile(new URL(`./results/sale-boundary-${LABEL}.md`, import.meta.url), md.join("\n"));
console.log(md.join("\n"));
