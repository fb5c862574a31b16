/**
 * Overload (docs/architecture.md#load-shedding): one catalog on a cold cache, 2,000 products, hit by
 * 1,000 connections (as in issue 13's measurement) for DURATION s, with load shedding on (the
 * defaults: 503 OVERLOADED while the event loop's mean delay is over 100 ms) and off, in one run.
 * First the catalog's capacity is measured (50 connections, warm), so the offered rate can be given
 * as a multiple of it. Per run: answered (200) req/s, shed (503) req/s, p99 of the answered requests,
 * the catalog's peak RSS (sampled every 250 ms), and whether it survived.
 *
 *   pnpm exec tsx bench/overload.ts [seconds=20] [connections=1000]
 *
 * Writes bench/results/overload.{json,md}. The catalog is pinned to CPU 0, autocannon to CPU 1.
 */
import { writeFile } from "node:fs/promises";
import { percentile, pgPool, runId, spawnService } from "@flashsale/testkit";
import autocannon from "autocannon";
import { pidOnPort, pin, privateRedis, rssMiB } from "./lib.ts";

const DURATION = Number(process.argv[2] ?? 20);
const CONNECTIONS = Number(process.argv[3] ?? 1000);
const N = 2_000;
const pool = pgPool();
const priv = await privateRedis();
const tag = runId();
pin(process.pid, 1);

const { rows } = await pool.query<{ id: string }>(
  `WITH p AS (
     INSERT INTO products (sku, name, list_price_cents) SELECT 'OVERLOAD-' || $1 || '-' || g, 'overload', 1000 FROM generate_series(1, $2::int) g RETURNING id
   ), i AS (INSERT INTO inventory (product_id, available) SELECT id, 1 FROM p)
   SELECT id FROM p`,
  [tag, N],
);
const ids = rows.map((r) => Number(r.id));

function run(
  url: string,
  connections: number,
  seconds: number,
  onStatus?: (status: number, ms: number) => void,
): Promise<autocannon.Result> {
  let cursor = 0;
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url,
        connections,
        duration: seconds,
        timeout: 10,
        requests: [
          {
            setupRequest: (req) => {
              cursor = (cursor + 7919) % ids.length;
              return { ...req, path: `/products/${ids[cursor]}` };
            },
          },
        ],
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    if (onStatus) inst.on("response", (_c, status, _b, ms) => onStatus(status, ms));
  });
}

async function scenario(name: string, port: number, env: Record<string, string>) {
  const svc = await spawnService("catalog", port, {
    CACHE_SCHEMA_VERSION: String(12_000 + Math.floor(Math.random() * 1000)),
    REDIS_URL: priv.url,
    ...env,
  });
  const pid = pidOnPort(port);
  pin(pid, 0);
  let peakRss = rssMiB(pid);
  const sampler = setInterval(() => {
    const r = rssMiB(pid);
    if (r > peakRss) peakRss = r;
  }, 250);
  const ok: number[] = [];
  let shed = 0;
  let other = 0;
  const r = await run(svc.url, CONNECTIONS, DURATION, (status, ms) => {
    if (status === 200) ok.push(ms);
    else if (status === 503) shed++;
    else other++;
  });
  clearInterval(sampler);
  const alive = await fetch(`${svc.url}/healthz`)
    .then((res) => res.ok)
    .catch(() => false);
  await svc.stop();
  return {
    name,
    attemptedReqPerSec: Math.round((ok.length + shed + other + r.errors) / DURATION),
    answeredReqPerSec: Math.round(ok.length / DURATION),
    shedReqPerSec: Math.round(shed / DURATION),
    otherStatus: other,
    errorsAndTimeouts: r.errors + r.timeouts,
    answeredP50Ms: Math.round(percentile(ok, 50) * 10) / 10,
    answeredP99Ms: Math.round(percentile(ok, 99) * 10) / 10,
    answeredMaxMs: Math.round(ok.reduce((m, x) => Math.max(m, x), 0)),
    peakRssMiB: peakRss,
    aliveAfter: alive,
  };
}

// Capacity: 50 connections on a warm cache (every product read once first).
const cap = await spawnService("catalog", 3271, {
  CACHE_SCHEMA_VERSION: String(13_000 + Math.floor(Math.random() * 1000)),
  REDIS_URL: priv.url,
});
pin(pidOnPort(3271), 0);
for (let i = 0; i < ids.length; i += 20)
  await Promise.all(ids.slice(i, i + 20).map((id) => fetch(`${cap.url}/products/${id}`).then((x) => x.arrayBuffer())));
const capacity = Math.round((await run(cap.url, 50, 8)).requests.average);
await cap.stop();

const results = [
  // The production defaults (packages/config); testServiceEnv turns shedding off for tests.
  await scenario("shedding on (defaults)", 3272, {
    CATALOG_SHED_EVENT_LOOP_DELAY_MS: "100",
    CATALOG_SHED_HEAP_MB: "1024",
    CATALOG_SHED_MAX_IN_FLIGHT: "256",
  }),
  await scenario("shedding off", 3273, {
    CATALOG_SHED_EVENT_LOOP_DELAY_MS: "0",
    CATALOG_SHED_HEAP_MB: "0",
    CATALOG_SHED_MAX_IN_FLIGHT: "0",
  }),
];
await pool.query("DELETE FROM products WHERE id = ANY($1::bigint[])", [ids]);
await pool.end();
await priv.stop();

const summary = {
  measuredAt: new Date().toISOString(),
  seconds: DURATION,
  connections: CONNECTIONS,
  products: N,
  capacityReqPerSec: capacity,
  results,
};
await writeFile(new URL("./results/overload.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Overload (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/overload.ts ${DURATION} ${CONNECTIONS}\`: capacity (50 connections, warm cache) ${capacity} req/s; then ${CONNECTIONS} connections for ${DURATION} s on a cold cache of ${N} products. Catalog on CPU 0, autocannon on CPU 1.`,
  "",
  "| run | attempted req/s (× capacity) | answered 200 req/s | shed 503 req/s | p50 / p99 / max of answered ms | errors + timeouts | peak RSS MiB | alive after |",
  "|---|---|---|---|---|---|---|---|",
  ...results.map(
    (r) =>
      `| ${r.name} | ${r.attemptedReqPerSec} (${(r.attemptedReqPerSec / capacity).toFixed(1)}×) | ${r.answeredReqPerSec} | ${r.shedReqPerSec} | ${r.answeredP50Ms} / ${r.answeredP99Ms} / ${r.answeredMaxMs} | ${r.errorsAndTimeouts} | ${r.peakRssMiB} | ${r.aliveAfter} |`,
  ),
  "",
  "autocannon is a closed-loop generator (each connection waits for its answer), so the attempted rate is what 1,000 connections achieve against each server, not a fixed offered rate.",
  "",
];
await writeFile(new URL("./results/overload.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
