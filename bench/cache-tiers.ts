/**
 * The cache tiers' benchmark (docs/architecture.md#cache-protocol), against the real stack (scripts/up or scripts/test's infra):
 *
 * 1. Throughput/latency of GET /products/:id served from L1, from Redis (L1 off), a bare
 *    fastify route returning the same JSON, and our service skeleton (logger, error
 *    handling, metrics) returning it: interleaved rounds in one run, ratios against bare.
 * 2. Stampede: a hot key under load, invalidated every 100 ms; Postgres reads per
 *    invalidation (pg_stat_statements) with our protocol vs plain cache-aside.
 *
 *   pnpm exec tsx bench/cache-tiers.ts [secondsPerRun=5] [rounds=3]
 *
 * Writes bench/results/cache-tiers.{json,md}.
 *
 * On the 2-core machine the load generator (autocannon, this process) would otherwise compete with
 * the server for the same cores: every server is pinned to CPU 0 and this process to CPU 1
 * (bench/lib.ts pin), and besides req/s each target's CPU time per request is measured from
 * /proc (the server's own cost, which the generator's speed cannot flatter). The catalogs use a
 * private Redis with a published freshness watermark (bench/lib.ts privateRedis).
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { invalidateProduct } from "@flashsale/product-cache";
import { insertProduct, pgPool, productReadCount, redisClient, runId, spawnService, waitFor } from "@flashsale/testkit";
import autocannon from "autocannon";
import { cpuSeconds, pidOnPort, pin, privateRedis } from "./lib.ts";

const SECONDS = Number(process.argv[2] ?? 5);
const ROUNDS = Number(process.argv[3] ?? 3);
const CONNECTIONS = 50;
const pool = pgPool();
const priv = await privateRedis();
const redis = redisClient(priv.url);
const schema = 6_000 + Math.floor(Math.random() * 1_000);
const product = await insertProduct(pool, { sku: `BENCH-${runId()}`, listPriceCents: 1234, stock: 1 });

async function startBaseline(port: number, base: "bare" | "service") {
  const proc = spawn(process.execPath, ["--import", "tsx", "bench/bare-server.ts"], {
    env: { ...process.env, PORT: String(port), PRODUCT_ID: String(product.id), BASE: base },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => ((await fetch(`${url}/readyz`).catch(() => null))?.ok ? true : undefined), {
    timeoutMs: 30_000,
    what: "bare server",
  });
  return { url, stop: async () => void proc.kill("SIGTERM") };
}

/** The server's pid, pinned to CPU 0 (the generator runs on CPU 1). */
function pinned(url: string): number {
  const pid = pidOnPort(Number(new URL(url).port));
  pin(pid, 0);
  return pid;
}
pin(process.pid, 1);

function load(url: string, seconds = SECONDS): Promise<autocannon.Result> {
  return autocannon({ url: `${url}/products/${product.id}`, connections: CONNECTIONS, duration: seconds });
}

// ---- 1. tiers ----
// The catalogs run the production defaults of load shedding (testServiceEnv turns it off for tests).
const shedding = { CATALOG_SHED_EVENT_LOOP_DELAY_MS: "100", CATALOG_SHED_HEAP_MB: "1024", CATALOG_SHED_MAX_IN_FLIGHT: "256" };
const targets = {
  "bare fastify": await startBaseline(3190, "bare"),
  "service skeleton, constant JSON": await startBaseline(3189, "service"),
  "L1 hit": await spawnService("catalog", 3191, { CACHE_SCHEMA_VERSION: String(schema), REDIS_URL: priv.url, ...shedding }),
  "Redis hit (L1 off)": await spawnService("catalog", 3192, {
    CACHE_SCHEMA_VERSION: String(schema),
    CACHE_L1_ENABLED: "false",
    REDIS_URL: priv.url,
    ...shedding,
  }),
};
const pids = Object.fromEntries(Object.entries(targets).map(([name, t]) => [name, pinned(t.url)]));
const samples: Record<string, { rps: number[]; p99: number[]; cpuUs: number[]; errors: number }> = {};
for (const name of Object.keys(targets)) samples[name] = { rps: [], p99: [], cpuUs: [], errors: 0 };
for (const t of Object.values(targets)) await load(t.url, 2); // warm-up (JIT, caches)
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, t] of Object.entries(targets)) {
    const pid = pids[name] as number;
    const cpu0 = cpuSeconds(pid);
    const r = await load(t.url);
    const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, r.requests.total);
    const s = samples[name] as { rps: number[]; p99: number[]; cpuUs: number[]; errors: number };
    s.rps.push(r.requests.average);
    s.p99.push(r.latency.p99);
    s.cpuUs.push(cpuUs);
    s.errors += r.errors + r.non2xx;
    console.log(
      `round ${round + 1} ${name}: ${r.requests.average.toFixed(0)} req/s, p99 ${r.latency.p99} ms, ${cpuUs.toFixed(1)} CPU µs/req`,
    );
  }
}
for (const t of Object.values(targets)) await t.stop();

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const bareRps = mean(samples["bare fastify"]?.rps ?? []);
const bareCpu = mean(samples["bare fastify"]?.cpuUs ?? []);
const tiers = Object.entries(samples).map(([name, s]) => ({
  name,
  reqPerSec: Math.round(mean(s.rps)),
  p99Ms: Math.round(mean(s.p99) * 10) / 10,
  ratioToBare: Math.round((mean(s.rps) / bareRps) * 100) / 100,
  cpuUsPerRequest: Math.round(mean(s.cpuUs) * 10) / 10,
  /** bare's CPU per request / this target's: the throughput ratio a saturated server would show. */
  cpuRatioToBare: Math.round((bareCpu / mean(s.cpuUs)) * 100) / 100,
  errors: s.errors,
}));

// ---- 2. stampede: DB reads per invalidation, protocol vs plain ----
async function stampede(mode: "protocol" | "plain", port: number) {
  const svc = await spawnService("catalog", port, {
    CACHE_SCHEMA_VERSION: String(schema + (mode === "plain" ? 1 : 2)),
    CACHE_MODE: mode,
    REDIS_URL: priv.url,
  });
  pinned(svc.url);
  const s = mode === "plain" ? schema + 1 : schema + 2;
  const running = load(svc.url, SECONDS);
  await new Promise((r) => setTimeout(r, 500)); // let the load ramp up
  const before = await productReadCount(pool);
  let invalidations = 0;
  const until = Date.now() + (SECONDS - 1.5) * 1000;
  while (Date.now() < until) {
    const { rows } = await pool.query<{ version: string }>(
      "UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = $1 RETURNING version",
      [product.id],
    );
    await invalidateProduct(redis, {
      schemaVersion: s,
      id: product.id,
      version: Number(rows[0]?.version),
      fenceTtlMs: 60_000,
    });
    invalidations++;
    await new Promise((r) => setTimeout(r, 100));
  }
  const reads = (await productReadCount(pool)) - before;
  const result = await running;
  await svc.stop();
  return {
    mode,
    invalidations,
    dbReads: reads,
    readsPerInvalidation: Math.round((reads / invalidations) * 10) / 10,
    reqPerSec: Math.round(result.requests.average),
    errors: result.errors + result.non2xx,
  };
}
const stampedes = [await stampede("plain", 3193), await stampede("protocol", 3194)];

const summary = {
  measuredAt: new Date().toISOString(),
  secondsPerRun: SECONDS,
  rounds: ROUNDS,
  connections: CONNECTIONS,
  tiers,
  stampedes,
};
await writeFile(new URL("./results/cache-tiers.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Cache tiers (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/cache-tiers.ts ${SECONDS} ${ROUNDS}\`: autocannon, ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${SECONDS} s per target, loopback; every server pinned to CPU 0, the load generator to CPU 1 (other processes of the machine run on both).`,
  "",
  "| served by | req/s | p99 ms | × bare fastify (req/s) | server CPU µs / request | × bare fastify (CPU per request) | errors |",
  "|---|---|---|---|---|---|---|",
  ...tiers.map(
    (t) => `| ${t.name} | ${t.reqPerSec} | ${t.p99Ms} | ${t.ratioToBare} | ${t.cpuUsPerRequest} | ${t.cpuRatioToBare} | ${t.errors} |`,
  ),
  "",
  "Hot key under the same load, invalidated every 100 ms (UPDATE + eviction):",
  "",
  "| mode | invalidations | Postgres reads | reads / invalidation | req/s | errors |",
  "|---|---|---|---|---|---|",
  ...stampedes.map((s) => `| ${s.mode} | ${s.invalidations} | ${s.dbReads} | ${s.readsPerInvalidation} | ${s.reqPerSec} | ${s.errors} |`),
  "",
];
await writeFile(new URL("./results/cache-tiers.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
await pool.end();
await redis.quit();
await priv.stop();
