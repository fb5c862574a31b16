/**
 * Our catalog side by side with two peers built the usual way (bench/peer-server.ts: fastify +
 * bentocache with memory L1, Redis L2 and its Redis bus; fastify + plain cache-aside with ioredis),
 * same data, same machine, one run (issue 13 item 6):
 *
 * 1. Hit throughput on one hot product (50 connections, interleaved rounds; server on CPU 0,
 *    autocannon on CPU 1) and the server's CPU per request.
 * 2. Postgres reads per invalidation of that hot key under load across 2 processes of each system:
 *    half the load on each process, the price changed every 100 ms through the system's own write
 *    path on the first process (ours: PUT /admin/products/:id/price; peers: their PUT route, which
 *    deletes the key). Reads counted by each process (ours: the cache's miss/lease-timeout/bypass
 *    events; peers: their factory calls).
 * 3. The stale window after a raw-SQL price change (no application write): poll every 5 ms until the
 *    new price is served, 3 s at most. Ours learns it through CDC (a private invalidator consuming
 *    the test stack's topics, evicting in this benchmark's private Redis); the peers cannot.
 *
 *   pnpm exec tsx bench/peers.ts [secondsPerRun=5] [rounds=2]
 *
 * Writes bench/results/peers.{json,md}.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { insertProduct, percentile, pgPool, runId, type ServiceProcess, spawnService, waitFor } from "@flashsale/testkit";
import autocannon from "autocannon";
import { cpuSeconds, pidOnPort, pin, privateRedis } from "./lib.ts";

const SECONDS = Number(process.argv[2] ?? 5);
const ROUNDS = Number(process.argv[3] ?? 2);
const ADMIN = "bench-admin-token-0123456789";
const pool = pgPool();
const priv = await privateRedis();
const tag = runId();
const product = await insertProduct(pool, { sku: `PEERS-${tag}`, listPriceCents: 1000, stock: 1 });
pin(process.pid, 1);

async function startPeer(kind: "bentocache" | "cache-aside", port: number): Promise<ServiceProcess> {
  const proc = spawn(process.execPath, ["--import", "tsx", "bench/peer-server.ts"], {
    env: { ...process.env, PEER: kind, PORT: String(port), REDIS_URL: priv.url },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => ((await fetch(`${url}/readyz`).catch(() => null))?.ok ? true : undefined), { timeoutMs: 30_000, what: kind });
  return {
    url,
    stop: async () => {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

const schema = 15_000 + Math.floor(Math.random() * 1000);
const catalogEnv = { CACHE_SCHEMA_VERSION: String(schema), REDIS_URL: priv.url, ADMIN_TOKEN: ADMIN };
// The invalidator of this run: its own consumer group on the test stack's topics, evicting here.
const invalidator = await spawnService("invalidator", 3250, {
  REDIS_URL: priv.url,
  KAFKA_GROUP_ID: `flashsale-test-peers-${tag}`,
  KAFKA_NEW_GROUP_START: "latest",
});
console.error("peers: invalidator up");
const systems = {
  "ours (catalog)": [await spawnService("catalog", 3251, catalogEnv), await spawnService("catalog", 3252, catalogEnv)],
  "fastify + bentocache": [await startPeer("bentocache", 3253), await startPeer("bentocache", 3254)],
  "fastify + cache-aside (ioredis)": [await startPeer("cache-aside", 3255), await startPeer("cache-aside", 3256)],
} as const;
type Name = keyof typeof systems;
for (const procs of Object.values(systems)) for (const p of procs) pin(pidOnPort(Number(new URL(p.url).port)), 0);
const path = `/products/${product.id}`;
console.error("peers: all servers up and pinned");

function load(url: string, seconds: number, connections = 50): Promise<autocannon.Result> {
  return autocannon({ url: `${url}${path}`, connections, duration: seconds, timeout: 5 });
}

// ---- 1. hit throughput (first process of each) ----
const hits: Record<string, { rps: number[]; cpuUs: number[]; p99: number[] }> = {};
for (const [name, procs] of Object.entries(systems)) {
  hits[name] = { rps: [], cpuUs: [], p99: [] };
  await load(procs[0].url, 2);
}
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, procs] of Object.entries(systems)) {
    const pid = pidOnPort(Number(new URL(procs[0].url).port));
    const c0 = cpuSeconds(pid);
    const r = await load(procs[0].url, SECONDS);
    const h = hits[name] as { rps: number[]; cpuUs: number[]; p99: number[] };
    h.rps.push(r.requests.average);
    h.p99.push(r.latency.p99);
    h.cpuUs.push(((cpuSeconds(pid) - c0) * 1e6) / Math.max(1, r.requests.total));
    console.log(`round ${round + 1} ${name}: ${Math.round(r.requests.average)} req/s`);
  }
}

console.error("peers: hit throughput done");
// ---- 2. Postgres reads per invalidation across 2 processes ----
async function readsOf(name: Name): Promise<number> {
  let total = 0;
  for (const p of systems[name]) {
    if (name === "ours (catalog)") {
      const text = await (await fetch(`${p.url}/metrics`)).text();
      for (const m of text.matchAll(/^catalog_cache_events_total\{event="(miss|lease_wait_timeout|bypass)"[^}]*\} (\d+)/gm))
        total += Number(m[2]);
    } else {
      total += ((await (await fetch(`${p.url}/reads`)).json()) as { reads: number }).reads;
    }
  }
  return total;
}
let price = 2000;
async function write(name: Name): Promise<void> {
  price++;
  const [first] = systems[name];
  const url = name === "ours (catalog)" ? `${first.url}/admin/products/${product.id}/price` : `${first.url}/products/${product.id}/price`;
  const res = await fetch(url, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ listPriceCents: price }),
  });
  if (!res.ok) throw new Error(`${name} write: ${res.status}`);
}
const invalidation: Record<string, { writes: number; reads: number; readsPerWrite: number; reqPerSec: number }> = {};
for (const name of Object.keys(systems) as Name[]) {
  const [a, b] = systems[name];
  const running = Promise.all([load(a.url, SECONDS, 25), load(b.url, SECONDS, 25)]);
  await new Promise((r) => setTimeout(r, 500));
  const before = await readsOf(name);
  let writes = 0;
  const until = Date.now() + (SECONDS - 1.5) * 1000;
  while (Date.now() < until) {
    await write(name);
    writes++;
    await new Promise((r) => setTimeout(r, 100));
  }
  const reads = (await readsOf(name)) - before;
  const [ra, rb] = await running;
  invalidation[name] = {
    writes,
    reads,
    readsPerWrite: Math.round((reads / writes) * 10) / 10,
    reqPerSec: Math.round(ra.requests.average + rb.requests.average),
  };
  console.log(`${name}: ${writes} writes, ${reads} Postgres reads`);
}

console.error("peers: invalidation done");
// ---- 3. stale window after a raw-SQL price change ----
const CAP_MS = 3_000;
const stale: Record<string, number[]> = {};
for (const name of Object.keys(systems) as Name[]) {
  stale[name] = [];
  const [a] = systems[name];
  for (let i = 0; i < 5; i++) {
    await fetch(`${a.url}${path}`); // cached
    price++;
    await pool.query("UPDATE products SET list_price_cents = $1 WHERE id = $2", [price, product.id]);
    const t0 = performance.now();
    let seen = Number.NaN;
    while (performance.now() - t0 < CAP_MS) {
      const body = (await (await fetch(`${a.url}${path}`)).json()) as { listPriceCents: number };
      if (body.listPriceCents === price) {
        seen = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    (stale[name] as number[]).push(seen);
  }
}

for (const procs of Object.values(systems)) for (const p of procs) await p.stop();
await invalidator.stop();
await pool.query("DELETE FROM products WHERE id = $1", [product.id]);
await pool.end();
await priv.stop();

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const rows = (Object.keys(systems) as Name[]).map((name) => {
  const h = hits[name] as { rps: number[]; cpuUs: number[]; p99: number[] };
  const s = stale[name] as number[];
  const seen = s.filter((x) => !Number.isNaN(x));
  return {
    name,
    hitReqPerSec: Math.round(mean(h.rps)),
    hitP99Ms: Math.round(mean(h.p99) * 10) / 10,
    cpuUsPerHit: Math.round(mean(h.cpuUs) * 10) / 10,
    invalidation: invalidation[name],
    staleWindowMs: {
      seen: `${seen.length}/${s.length}`,
      p50: seen.length ? Math.round(percentile(seen, 50)) : null,
      max: seen.length === s.length ? Math.round(Math.max(...seen)) : null,
    },
  };
});
const summary = { measuredAt: new Date().toISOString(), secondsPerRun: SECONDS, rounds: ROUNDS, rows };
await writeFile(new URL("./results/peers.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `# Peers side by side (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/peers.ts ${SECONDS} ${ROUNDS}\`: one hot product; servers on CPU 0, autocannon on CPU 1; a private Redis; our catalogs evicted by their own admin writes and by a private invalidator (CDC).`,
  "",
  "| system | hit req/s (50 conn.) | hit p99 ms | CPU µs / hit | price writes every 100 ms under load on 2 processes: writes / Postgres reads / reads per write | stale window after a raw-SQL price change (5 tries): seen within 3 s, p50, max ms |",
  "|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.hitReqPerSec} | ${r.hitP99Ms} | ${r.cpuUsPerHit} | ${r.invalidation?.writes} / ${r.invalidation?.reads} / ${r.invalidation?.readsPerWrite} | ${r.staleWindowMs.seen}, ${r.staleWindowMs.p50 ?? "never"}, ${r.staleWindowMs.max ?? "—"} |`,
  ),
  "",
  "The peers only delete on their own writes: a raw-SQL change (psql, an import job, another service) is not seen until their TTL (1 h here) ends.",
  "",
];
await writeFile(new URL("./results/peers.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
