/**
 * Orchestrates one load-test run (called by load-tests/run): snapshots of Postgres'
 * product reads and the services' metrics, the k6 run itself, the consistency
 * checker after the run settles, and a summary in load-tests/results/<scenario>.{json,md}.
 */
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { auditOrders, checkCacheConsistency } from "@flashsale/consistency";
import { pgPool, productReadCount, redisClient } from "@flashsale/testkit";

const [scenario, k6, ...envArgs] = process.argv.slice(2) as [string, string, ...string[]];
const env = Object.fromEntries(envArgs.map((a) => a.split("=", 2) as [string, string]));
const resultsDir = new URL("./results/", import.meta.url);
const pool = pgPool();
const redis = redisClient();

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const delta = (a: Map<string, number>, b: Map<string, number>, key: string) => (b.get(key) ?? 0) - (a.get(key) ?? 0);
/** Sum over the series of `name` that carry label="value" (label order in the exposition does not matter). */
function seriesDelta(a: Map<string, number>, b: Map<string, number>, name: string, label: string, value: string): number {
  let sum = 0;
  for (const key of b.keys()) {
    if (key.startsWith(`${name}{`) && key.includes(`${label}="${value}"`)) sum += delta(a, b, key);
  }
  return sum;
}

/** p-th percentile upper bound from the delta of a Prometheus histogram. */
function histogramPercentile(a: Map<string, number>, b: Map<string, number>, name: string, p: number): number | null {
  const buckets = [...b.keys()]
    .filter((k) => k.startsWith(`${name}_bucket{`))
    .map((k) => ({ le: /le="([^"]+)"/.exec(k)?.[1] ?? "+Inf", count: delta(a, b, k) }))
    .sort((x, y) => (x.le === "+Inf" ? 1 : y.le === "+Inf" ? -1 : Number(x.le) - Number(y.le)));
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const bucket = buckets.find((x) => x.count >= (p / 100) * total);
  return bucket && bucket.le !== "+Inf" ? Number(bucket.le) * 1000 : null;
}

const startedAt = new Date();
const [catalogBefore, checkoutBefore, invalidatorBefore, readsBefore] = await Promise.all([
  scrape(3001),
  scrape(3002),
  scrape(3003),
  productReadCount(pool),
]);
const summaryFile = new URL(`${scenario}.k6-summary.json`, resultsDir).pathname;
const k6run = spawnSync(
  k6,
  ["run", "--quiet", "--summary-export", summaryFile, "--summary-trend-stats", "avg,p(50),p(99),max", `load-tests/${scenario}.js`],
  {
    stdio: "inherit",
    env: { ...process.env, ...env, K6_AUTO_EXTENSION_RESOLUTION: "false", K6_NO_USAGE_REPORT: "true" },
  },
);
const [catalogAfter, checkoutAfter, invalidatorAfter, readsAfter] = await Promise.all([
  scrape(3001),
  scrape(3002),
  scrape(3003),
  productReadCount(pool),
]);

// Settle: the last changes need their invalidation (milliseconds); the checker's grace covers it.
const cache = await checkCacheConsistency({ redis, pool, schemaVersion: Number(process.env.CACHE_SCHEMA_VERSION ?? 1), graceMs: 2_000 });
const orders = await auditOrders(pool, { since: startedAt });

const k6summary = JSON.parse(await (await import("node:fs/promises")).readFile(summaryFile, "utf8")) as {
  metrics: Record<string, Record<string, number> & { thresholds?: Record<string, boolean> }>;
};
const metric = (name: string) => k6summary.metrics[name];
const endpoints = Object.keys(k6summary.metrics)
  .filter((k) => k.startsWith("http_req_duration{name:"))
  .map((k) => ({ endpoint: /name:([^}]+)/.exec(k)?.[1] ?? k, p50: metric(k)?.["p(50)"], p99: metric(k)?.["p(99)"], max: metric(k)?.max }));
const ev = (e: string) => seriesDelta(catalogBefore, catalogAfter, "catalog_cache_events_total", "event", e);
const l1Hits = ev("l1_hit");
const l2Hits = ev("hit");
const misses = ev("miss") + ev("bypass") + ev("lease_wait_timeout");
const reads = l1Hits + ev("l1_miss");
const outcomes = Object.fromEntries(
  ["placed", "price_changed", "out_of_stock", "cart_empty", "overloaded", "idempotency_key_reused"]
    .map((o) => [o, seriesDelta(checkoutBefore, checkoutAfter, "checkout_outcomes_total", "outcome", o)] as const)
    .filter(([, n]) => n > 0),
);
const thresholdsFailed = Object.entries(k6summary.metrics).flatMap(([name, m]) =>
  Object.entries(m.thresholds ?? {})
    .filter(([, failed]) => failed)
    .map(([t]) => `${name}: ${t}`),
);
const summary = {
  scenario,
  env,
  startedAt: startedAt.toISOString(),
  requests: metric("http_reqs")?.count,
  requestsPerSec: Math.round(metric("http_reqs")?.rate ?? 0),
  failedRequests: metric("http_req_failed")?.passes ?? 0,
  endpoints,
  cache: {
    l1HitRatio: reads ? l1Hits / reads : null,
    redisHitRatioOfL1Misses: ev("l1_miss") ? l2Hits / ev("l1_miss") : null,
    misses,
    postgresProductReads: readsAfter - readsBefore,
  },
  invalidationLagMs: {
    p50: histogramPercentile(invalidatorBefore, invalidatorAfter, "invalidation_lag_seconds", 50),
    p99: histogramPercentile(invalidatorBefore, invalidatorAfter, "invalidation_lag_seconds", 99),
    evictions: seriesDelta(invalidatorBefore, invalidatorAfter, "invalidator_events_total", "outcome", "evicted"),
  },
  staleSaleReads: metric("stale_sale_reads")?.count ?? 0,
  adminWriteVisibleMs: metric("admin_write_visible_ms")
    ? { p50: metric("admin_write_visible_ms")?.["p(50)"], p99: metric("admin_write_visible_ms")?.["p(99)"] }
    : null,
  adminWrites: metric("admin_writes")?.count ?? null,
  checkoutOutcomes: outcomes,
  wrongPriceOrders: orders.wrongPrice.length,
  orderLinesAudited: orders.orderLinesChecked,
  negativeStockProducts: orders.negativeStockProducts,
  consistency: { keysChecked: cache.keysChecked, inconsistent: cache.inconsistent.length, staleBeyondGrace: cache.staleBeyondGrace },
  thresholdsFailed,
};
const dbReadsPerWrite = summary.adminWrites ? Math.round(((readsAfter - readsBefore) / summary.adminWrites) * 100) / 100 : null;
const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
const md = [
  `# ${scenario} (${summary.startedAt})`,
  "",
  `Command: \`load-tests/run ${scenario}${envArgs.length ? ` ${envArgs.join(" ")}` : ""}\` — everything on one 2-core machine (k6, services, Postgres, Redis, Kafka, Connect).`,
  "",
  `| requests | req/s | failed (5xx/transport) | wrong-price orders | oversold (stock < 0) | stale sale reads | consistency: stale keys after run |`,
  `|---|---|---|---|---|---|---|`,
  `| ${summary.requests} | ${summary.requestsPerSec} | ${summary.failedRequests} | ${summary.wrongPriceOrders} (of ${summary.orderLinesAudited} audited) | ${summary.negativeStockProducts} | ${summary.staleSaleReads} | ${summary.consistency.staleBeyondGrace} of ${summary.consistency.keysChecked} |`,
  "",
  "| endpoint | p50 ms | p99 ms | max ms |",
  "|---|---|---|---|",
  ...endpoints.map((e) => `| ${e.endpoint} | ${fmt(e.p50)} | ${fmt(e.p99)} | ${fmt(e.max)} |`),
  "",
  `Cache: L1 hit ratio ${fmt((summary.cache.l1HitRatio ?? 0) * 100)} %, Redis hits for ${fmt((summary.cache.redisHitRatioOfL1Misses ?? 0) * 100)} % of L1 misses, ${summary.cache.postgresProductReads} Postgres product reads${dbReadsPerWrite !== null ? ` (${dbReadsPerWrite} per admin write)` : ""}.`,
  `Invalidation lag (commit → eviction, histogram bucket bound): p50 ≤ ${fmt(summary.invalidationLagMs.p50, 0)} ms, p99 ≤ ${fmt(summary.invalidationLagMs.p99, 0)} ms over ${summary.invalidationLagMs.evictions} evictions.`,
  summary.adminWriteVisibleMs
    ? `Admin price change → visible on the catalog (stale-read window): p50 ${fmt(summary.adminWriteVisibleMs.p50)} ms, p99 ${fmt(summary.adminWriteVisibleMs.p99)} ms.`
    : "",
  Object.keys(outcomes).length
    ? `Checkout outcomes: ${Object.entries(outcomes)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}.`
    : "",
  thresholdsFailed.length ? `**Thresholds failed:** ${thresholdsFailed.join("; ")}` : "All k6 thresholds passed.",
  "",
]
  .filter((l) => l !== "")
  .join("\n");
await writeFile(new URL(`${scenario}.json`, resultsDir), `${JSON.stringify({ ...summary, dbReadsPerWrite }, null, 2)}\n`);
await writeFile(new URL(`${scenario}.md`, resultsDir), `${md}\n`);
console.log(`\n${md}`);
await pool.end();
redis.disconnect();
const ok =
  k6run.status === 0 && summary.wrongPriceOrders === 0 && summary.negativeStockProducts === 0 && summary.consistency.staleBeyondGrace === 0;
process.exit(ok ? 0 : 1);
