/**
 * Soak: one catalog under steady read load for a long time, with a trickle of price changes
 * (UPDATE + eviction, as the invalidator would do), sampled every SAMPLE_S seconds: throughput,
 * p99, the catalog's CPU time per request and its RSS. A catalog that gets slower as it runs shows
 * a rising CPU per request (at a fixed offered rate throughput stays flat until it saturates).
 *
 *   pnpm exec tsx bench/soak.ts [minutes=30] [rate=4000] [label=soak]
 *
 * Writes bench/results/<label>.{json,md}. The catalog is pinned to CPU 0, this process (autocannon)
 * to CPU 1 (bench/lib.ts pin).
 */
import { writeFile } from "node:fs/promises";
import { invalidateProduct } from "@flashsale/product-cache";
import { percentile, pgPool, redisClient, runId, spawnService } from "@flashsale/testkit";
import autocannon from "autocannon";
import { cpuSeconds, pidOnPort, pin, privateRedis, rssMiB } from "./lib.ts";

const MINUTES = Number(process.argv[2] ?? 30);
const RATE = Number(process.argv[3] ?? 4000);
const LABEL = process.argv[4] ?? "soak";
const SAMPLE_S = MINUTES >= 10 ? 60 : 15;
const PRODUCTS = 5_000;
const PORT = 3281;
const pool = pgPool();
const privRedis = await privateRedis();
const redis = redisClient(privRedis.url);
const schema = 9_500 + Math.floor(Math.random() * 400);
const tag = runId();

const { rows } = await pool.query<{ id: string }>(
  `WITH p AS (
     INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
     SELECT 'SOAK-' || $1 || '-' || g, 'soak', 1000 + g % 50,
            CASE WHEN g % 3 = 0 THEN 800 END,
            CASE WHEN g % 3 = 0 THEN now() + (g % 60) * interval '1 minute' END,
            CASE WHEN g % 3 = 0 THEN now() + (g % 60 + 5) * interval '1 minute' END
     FROM generate_series(1, $2::int) g RETURNING id
   ), i AS (INSERT INTO inventory (product_id, available) SELECT id, 1 FROM p)
   SELECT id FROM p`,
  [tag, PRODUCTS],
);
const ids = rows.map((r) => Number(r.id));

const catalog = await spawnService("catalog", PORT, { CACHE_SCHEMA_VERSION: String(schema), REDIS_URL: privRedis.url });
const pid = pidOnPort(PORT);
pin(pid, 0);
pin(process.pid, 1);

// A price change per 200 ms on a random product, evicted the way the invalidator does it.
let writes = 0;
const writer = setInterval(() => {
  const id = ids[Math.floor(Math.random() * ids.length)] as number;
  void pool
    .query<{ version: string }>("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = $1 RETURNING version", [id])
    .then((r) => invalidateProduct(redis, { schemaVersion: schema, id, version: Number(r.rows[0]?.version), fenceTtlMs: 60_000 }))
    .then(() => writes++)
    .catch(() => {});
}, 200);

interface Sample {
  atMin: number;
  reqPerSec: number;
  p99Ms: number;
  cpuUsPerReq: number;
  rssMiB: number;
  non2xx: number;
}
const samples: Sample[] = [];
let window: { n: number; lat: number[]; bad: number } = { n: 0, lat: [], bad: 0 };
let cpuAt = cpuSeconds(pid);
const t0 = Date.now();
let cursor = 0;
let done: (r: autocannon.Result) => void = () => {};
const finished = new Promise<autocannon.Result>((resolve) => {
  done = resolve;
});
const instance = autocannon(
  {
    url: catalog.url,
    connections: 32,
    overallRate: RATE,
    duration: MINUTES * 60,
    requests: [
      {
        setupRequest: (req) => {
          // Skewed: half the reads go to 1 % of the products (a flash sale's hot items).
          cursor = (cursor + 7919) % ids.length;
          const id = Math.random() < 0.5 ? ids[cursor % 50] : ids[cursor];
          return { ...req, path: `/products/${id}` };
        },
      },
    ],
  },
  (err, r) => {
    if (err) throw err;
    done(r);
  },
);
instance.on("response", (_c, status, _b, ms) => {
  window.n++;
  window.lat.push(ms);
  if (status !== 200) window.bad++;
});
const sampler = setInterval(() => {
  const cpu = cpuSeconds(pid);
  const s: Sample = {
    atMin: Math.round(((Date.now() - t0) / 60_000) * 10) / 10,
    reqPerSec: Math.round(window.n / SAMPLE_S),
    p99Ms: Math.round(percentile(window.lat, 99) * 10) / 10,
    cpuUsPerReq: window.n ? Math.round(((cpu - cpuAt) * 1e6) / window.n) : 0,
    rssMiB: rssMiB(pid),
    non2xx: window.bad,
  };
  samples.push(s);
  console.log(JSON.stringify(s));
  cpuAt = cpu;
  window = { n: 0, lat: [], bad: 0 };
}, SAMPLE_S * 1000);
const result = await finished;
clearInterval(sampler);
clearInterval(writer);
await catalog.stop();
await pool.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [ids]);
await pool.end();
await redis.quit();
await privRedis.stop();

const steady = samples.slice(1);
const first = steady.slice(0, Math.max(1, Math.floor(steady.length / 5)));
const last = steady.slice(-Math.max(1, Math.floor(steady.length / 5)));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const summary = {
  label: LABEL,
  measuredAt: new Date().toISOString(),
  minutes: MINUTES,
  offeredReqPerSec: RATE,
  products: PRODUCTS,
  priceChanges: writes,
  totalRequests: result.requests.total,
  errors: result.errors + result.non2xx,
  firstFifth: {
    reqPerSec: Math.round(mean(first.map((s) => s.reqPerSec))),
    cpuUsPerReq: Math.round(mean(first.map((s) => s.cpuUsPerReq))),
    rssMiB: Math.round(mean(first.map((s) => s.rssMiB))),
  },
  lastFifth: {
    reqPerSec: Math.round(mean(last.map((s) => s.reqPerSec))),
    cpuUsPerReq: Math.round(mean(last.map((s) => s.cpuUsPerReq))),
    rssMiB: Math.round(mean(last.map((s) => s.rssMiB))),
  },
  samples,
};
await writeFile(new URL(`./results/${LABEL}.json`, import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Soak: ${MINUTES} min at ${RATE} req/s offered (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/soak.ts ${MINUTES} ${RATE} ${LABEL}\`: one catalog (CPU 0), autocannon 32 connections (CPU 1), ${PRODUCTS} products (half the reads on 50 hot ones, a third on sale with boundaries passing during the run), a price change + eviction every 200 ms.`,
  "",
  "| | req/s | catalog CPU µs / request | RSS MiB |",
  "|---|---|---|---|",
  `| first fifth | ${summary.firstFifth.reqPerSec} | ${summary.firstFifth.cpuUsPerReq} | ${summary.firstFifth.rssMiB} |`,
  `| last fifth | ${summary.lastFifth.reqPerSec} | ${summary.lastFifth.cpuUsPerReq} | ${summary.lastFifth.rssMiB} |`,
  "",
  `${result.requests.total} requests, ${summary.errors} errors, ${writes} price changes. Every sample:`,
  "",
  "| minute | req/s | p99 ms | CPU µs / req | RSS MiB | non-2xx |",
  "|---|---|---|---|---|---|",
  ...samples.map((s) => `| ${s.atMin} | ${s.reqPerSec} | ${s.p99Ms} | ${s.cpuUsPerReq} | ${s.rssMiB} | ${s.non2xx} |`),
  "",
];
await writeFile(new URL(`./results/${LABEL}.md`, import.meta.url), md.join("\n"));
console.log(md.slice(0, 9).join("\n"));
