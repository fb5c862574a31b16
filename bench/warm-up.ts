/**
 * Warm-up after a cold start (docs/architecture.md#warm-up): a catalog under a flash-sale read load
 * (20,000 products; 80 % of the reads on the 1,000 hottest, the rest spread over all) has its Redis
 * flushed; the first 10 s after the flush are measured per second: the share of requests answered
 * without waiting for Postgres (1 − (miss − warm-up reads + lease_wait + bypass) / requests, from
 * the catalog's cache events), the p99 and the Postgres reads (the warm-up's included). Once with the warm-up (its defaults: top 2,000, 500 reads/s), once
 * without, in one run, each with its own catalog and private Redis.
 *
 *   pnpm exec tsx bench/warm-up.ts [rate=3000]
 *
 * Writes bench/results/warm-up.{json,md}. Catalog on CPU 0, autocannon on CPU 1.
 */
import { writeFile } from "node:fs/promises";
import { percentile, pgPool, redisClient, runId, spawnService } from "@flashsale/testkit";
import autocannon from "autocannon";
import { pidOnPort, pin, privateRedis } from "./lib.ts";

const RATE = Number(process.argv[2] ?? 3000);
const N = 20_000;
const HOT = 1_000;
const BEFORE_S = 15;
const AFTER_S = 10;
const pool = pgPool();
const tag = runId();
pin(process.pid, 1);

const { rows } = await pool.query<{ id: string }>(
  `WITH p AS (
     INSERT INTO products (sku, name, list_price_cents) SELECT 'WARM-' || $1 || '-' || g, 'warm-up', 1000 FROM generate_series(1, $2::int) g RETURNING id
   ), i AS (INSERT INTO inventory (product_id, available) SELECT id, 1 FROM p)
   SELECT id FROM p`,
  [tag, N],
);
const ids = rows.map((r) => Number(r.id));

async function events(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^catalog_cache_events_total\{event="([a-z_0-9]+)"[^}]*\} (\d+)/gm)) out[m[1] as string] = Number(m[2]);
  const warmed = /^catalog_warmup_products_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  out.warmup = Number(warmed?.[1] ?? 0);
  return out;
}

async function scenario(name: string, port: number, env: Record<string, string>) {
  const priv = await privateRedis();
  const svc = await spawnService("catalog", port, {
    CACHE_SCHEMA_VERSION: String(14_000 + Math.floor(Math.random() * 1000)),
    REDIS_URL: priv.url,
    ...env,
  });
  pin(pidOnPort(port), 0);
  const flusher = redisClient(priv.url);
  let flushAt = Number.POSITIVE_INFINITY;
  const buckets = new Map<number, number[]>();
  let cursor = 0;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon(
      {
        url: svc.url,
        connections: 32,
        overallRate: RATE,
        duration: BEFORE_S + AFTER_S,
        requests: [
          {
            setupRequest: (req) => {
              cursor = (cursor + 7919) % N;
              const id = Math.random() < 0.8 ? ids[cursor % HOT] : ids[cursor];
              return { ...req, path: `/products/${id}` };
            },
          },
        ],
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    inst.on("response", (_c, _s, _b, ms) => {
      const k = Math.floor((Date.now() - flushAt) / 1000);
      if (k < 0 || k >= AFTER_S) return;
      const b = buckets.get(k) ?? [];
      b.push(ms);
      buckets.set(k, b);
    });
  });
  await new Promise((r) => setTimeout(r, BEFORE_S * 1000));
  const before: Record<string, number>[] = [await events(svc.url)];
  await flusher.flushall();
  flushAt = Date.now();
  for (let s = 1; s <= AFTER_S; s++) {
    await new Promise((r) => setTimeout(r, flushAt + s * 1000 - Date.now()));
    before.push(await events(svc.url));
  }
  await done;
  await svc.stop();
  flusher.disconnect();
  await priv.stop();
  const perSecond = [];
  for (let s = 0; s < AFTER_S; s++) {
    const a = before[s] as Record<string, number>;
    const b = before[s + 1] as Record<string, number>;
    const d = (e: string) => (b[e] ?? 0) - (a[e] ?? 0);
    const lat = buckets.get(s) ?? [];
    // The warm-up's own reads go through the cache too: its misses are not clients waiting. Each
    // warmed product is counted as one such miss (an upper bound: a warmed product already cached
    // by a client read was a hit), so "from cache" is slightly optimistic for the warm-up run.
    const waited = Math.max(0, d("miss") - d("warmup")) + d("lease_wait") + d("bypass");
    perSecond.push({
      second: s + 1,
      requests: lat.length,
      answeredFromCache: lat.length ? Math.round((1 - waited / lat.length) * 1000) / 1000 : 0,
      postgresReads: d("miss"),
      warmupReads: d("warmup"),
      p99Ms: Math.round(percentile(lat, 99) * 10) / 10,
    });
  }
  const all = [...buckets.values()].flat();
  const total = perSecond.reduce((a, s) => a + s.requests, 0);
  const answered = perSecond.reduce((a, s) => a + s.answeredFromCache * s.requests, 0);
  return {
    name,
    perSecond,
    first10s: {
      answeredFromCache: Math.round((answered / Math.max(1, total)) * 1000) / 1000,
      p99Ms: Math.round(percentile(all, 99) * 10) / 10,
    },
  };
}

const results = [
  await scenario("with warm-up (top 2000, 500 reads/s)", 3261, { CATALOG_WARMUP_RATE: "500", CATALOG_WARMUP_TOP: "2000" }),
  await scenario("without warm-up", 3262, { CATALOG_WARMUP_RATE: "0" }),
];
await pool.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [ids]);
await pool.end();

const summary = { measuredAt: new Date().toISOString(), offeredReqPerSec: RATE, products: N, hot: HOT, results };
await writeFile(new URL("./results/warm-up.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Warm-up after a Redis flush (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/warm-up.ts ${RATE}\`: one catalog (CPU 0), autocannon ${RATE} req/s (CPU 1), ${N} products, 80 % of reads on the ${HOT} hottest; FLUSHALL after ${BEFORE_S} s of load; the ${AFTER_S} s after it. "From cache" = answered without waiting for Postgres (1 − (miss − warm-up reads + lease_wait + bypass) / requests); Postgres reads include the warm-up's.`,
  "",
  "| run | from cache, first 10 s | p99 first 10 s (ms) | per second: from cache / p99 ms / Postgres reads |",
  "|---|---|---|---|",
  ...results.map(
    (r) =>
      `| ${r.name} | ${r.first10s.answeredFromCache} | ${r.first10s.p99Ms} | ${r.perSecond.map((s) => `${s.answeredFromCache} / ${s.p99Ms} / ${s.postgresReads}`).join("; ")} |`,
  ),
  "",
];
await writeFile(new URL("./results/warm-up.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
