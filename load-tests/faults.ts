/**
 * The fault matrix (issue 6), against the running stack (scripts/up): for each
 * component, a write+read load runs while the component is killed with SIGKILL and
 * restarted; then we wait for recovery and check the invariants.
 *
 *   scripts/faults [secondsPerFault=14] [component ...]   (default: all six)
 *
 * Per fault: requests, fast failures (503 with Retry-After, a refused or reset
 * connection — answering "not now" quickly is allowed), errors (any other 5xx, or no
 * answer within 5 s = a hang), max latency, wrong-price orders (order audit), oversold/lost units
 * (stock + units sold must equal the initial stock), stale cache keys once everything
 * is back (consistency checker). Writes load-tests/results/faults.{json,md}.
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { auditOrders, checkCacheConsistency } from "@flashsale/consistency";
import { insertProducts, pgPool, redisClient, runId, waitFor } from "@flashsale/testkit";

const ROOT = new URL("../", import.meta.url).pathname;
const SECONDS = Number(process.argv[2] ?? 14);
const ALL = ["redis", "kafka", "connect", "invalidator", "catalog", "postgres"] as const;
type Component = (typeof ALL)[number];
const chosen = (process.argv.slice(3).length ? process.argv.slice(3) : ALL) as Component[];
const CATALOG = "http://127.0.0.1:3001";
const CHECKOUT = "http://127.0.0.1:3002";
const ADMIN = { authorization: `Bearer ${process.env.ADMIN_TOKEN ?? "dev-admin-token-change-me"}`, "content-type": "application/json" };
const STOCK = 100_000;
const KILL_AT_MS = 2_000;
const DOWN_FOR_MS = 4_000;

const pool = pgPool(undefined, 4);
const redis = redisClient();
const products = await insertProducts(
  pool,
  Array.from({ length: 30 }, (_, i) => ({ sku: `FAULT-${runId()}-${i}`, listPriceCents: 1000 + i, stock: STOCK })),
);
const ids = products.map((p) => p.id);
const pick = () => ids[Math.floor(Math.random() * ids.length)] as number;

const infra = new Set<Component>(["redis", "kafka", "connect", "postgres"]);
// Asynchronous on purpose: a blocked event loop would stall the load and inflate its latencies.
const execFileP = promisify(execFile);
async function run(cmd: string, args: string[]): Promise<void> {
  await execFileP(cmd, args, { cwd: ROOT, timeout: 180_000 });
}
function kill9(c: Component): void {
  const pid = Number(readFileSync(`${ROOT}.state/pids/${c}.pid`, "utf8").trim());
  process.kill(pid, "SIGKILL");
}
async function restart(c: Component): Promise<void> {
  if (c === "postgres") {
    // The postmaster is gone; its backends exit on their own. Start once they have.
    await waitFor(
      async () =>
        (await execFileP("pgrep", ["-u", "postgres", "-f", "postgres"]).then(
          () => false,
          () => true,
        ))
          ? true
          : undefined,
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: "postgres backends to exit",
      },
    );
  }
  if (infra.has(c)) await run(`${ROOT}infra/native/up`, [c]);
  else await run("bash", ["-c", `source scripts/services.sh && svc_start ${c}`]);
}

interface Stats {
  requests: number;
  fastFailures: number;
  errors: number;
  maxLatencyMs: number;
  errorSamples: string[];
}

async function call(stats: Stats, url: string, init: RequestInit = {}): Promise<{ status: number; body: string } | null> {
  const t0 = performance.now();
  stats.requests++;
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
    const body = await res.text();
    stats.maxLatencyMs = Math.max(stats.maxLatencyMs, performance.now() - t0);
    if (res.status === 503 && res.headers.get("retry-after")) stats.fastFailures++;
    else if (res.status >= 500) {
      stats.errors++;
      if (stats.errorSamples.length < 3) stats.errorSamples.push(`${init.method ?? "GET"} ${url} -> ${res.status} ${body.slice(0, 120)}`);
    }
    return { status: res.status, body };
  } catch (err) {
    const ms = performance.now() - t0;
    stats.maxLatencyMs = Math.max(stats.maxLatencyMs, ms);
    // Refused or reset (e.g. in flight when the process was killed) is a fast failure; a timeout is a hang.
    if ((err as Error).name !== "TimeoutError") stats.fastFailures++;
    else {
      stats.errors++; // a hang (timeout) or a broken connection mid-request
      if (stats.errorSamples.length < 3)
        stats.errorSamples.push(`${init.method ?? "GET"} ${url} -> ${(err as Error).name} after ${Math.round(ms)} ms`);
    }
    return null;
  }
}

async function shopper(stats: Stats, tag: string, n: number): Promise<void> {
  const cart = await call(stats, `${CHECKOUT}/carts`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  if (cart?.status !== 201) return;
  const { id } = JSON.parse(cart.body) as { id: string };
  await call(stats, `${CHECKOUT}/carts/${id}/items`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ productId: pick(), quantity: 1 }),
  });
  await call(stats, `${CHECKOUT}/carts/${id}/checkout`, {
    method: "POST",
    headers: { "idempotency-key": `fault-${tag}-${n}`, "x-user-id": `fault-${tag}-${n}` },
  });
}

async function load(stats: Stats, until: number, tag: string): Promise<void> {
  let n = 0;
  const worker = async () => {
    while (Date.now() < until) {
      const r = Math.random();
      n++;
      if (r < 0.7) await call(stats, `${CATALOG}/products/${pick()}`);
      else if (r < 0.85) await shopper(stats, tag, n);
      else if (r < 0.95)
        await call(stats, `${CATALOG}/admin/products/${pick()}/price`, {
          method: "PUT",
          headers: ADMIN,
          body: JSON.stringify({ listPriceCents: 1000 + Math.floor(Math.random() * 900) }),
        });
      else await pool.query("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = $1", [pick()]).catch(() => {}); // raw SQL write
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

async function everythingReady(): Promise<void> {
  await waitFor(
    async () => {
      for (const port of [3001, 3002, 3003]) {
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1_000) }).then(
          (r) => r.status === 200,
          () => false,
        );
        if (!ok) return undefined;
      }
      return true;
    },
    { timeoutMs: 120_000, intervalMs: 250, what: "all services ready" },
  );
  await run(`${ROOT}infra/native/register-connector`, []); // no-op when RUNNING; restarts a FAILED task
}

const rows = [];
for (const c of chosen) {
  const tag = runId();
  const since = new Date();
  const stats: Stats = { requests: 0, fastFailures: 0, errors: 0, maxLatencyMs: 0, errorSamples: [] };
  const until = Date.now() + SECONDS * 1000;
  const running = load(stats, until, tag);
  await new Promise((r) => setTimeout(r, KILL_AT_MS));
  kill9(c);
  const killedAt = Date.now();
  await new Promise((r) => setTimeout(r, DOWN_FOR_MS));
  await restart(c);
  await running;
  await everythingReady();
  const recoveredMs = Date.now() - killedAt;
  // Missed invalidations must arrive (Kafka replays them): poll the checker to zero, bounded.
  let stale = Number.NaN;
  await waitFor(
    async () => {
      stale = (await checkCacheConsistency({ redis, pool, schemaVersion: Number(process.env.CACHE_SCHEMA_VERSION ?? 1), graceMs: 2_000 }))
        .staleBeyondGrace;
      return stale === 0 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: "no stale keys" },
  ).catch(() => {});
  const audit = await auditOrders(pool, { since, productIds: ids });
  const { rows: units } = await pool.query<{ mismatched: number }>(
    `SELECT count(*)::int AS mismatched FROM inventory i
     WHERE i.product_id = ANY($1) AND i.available + (SELECT coalesce(sum(quantity), 0) FROM order_items WHERE product_id = i.product_id) <> $2`,
    [ids, STOCK],
  );
  const row = {
    fault: `kill -9 ${c}`,
    requests: stats.requests,
    fastFailures: stats.fastFailures,
    errors: stats.errors,
    maxLatencyMs: Math.round(stats.maxLatencyMs),
    wrongPriceOrders: audit.wrongPrice.length,
    ordersAudited: audit.orderLinesChecked,
    oversoldOrLostSkus: (units[0]?.mismatched ?? 0) + audit.negativeStockProducts,
    staleKeysAfterRecovery: stale,
    recoveredInS: Math.round(recoveredMs / 100) / 10,
    errorSamples: stats.errorSamples,
  };
  console.log(JSON.stringify(row));
  rows.push(row);
}

const pass = rows.every((r) => r.errors === 0 && r.wrongPriceOrders === 0 && r.oversoldOrLostSkus === 0 && r.staleKeysAfterRecovery === 0);
const md = [
  `# Fault matrix (${new Date().toISOString()})`,
  "",
  `\`scripts/faults ${SECONDS}\`: per fault, ${SECONDS} s of load (8 workers: 70 % product reads, 15 % cart+checkout, 10 % admin price writes, 5 % raw SQL writes); the component is killed with SIGKILL after ${KILL_AT_MS / 1000} s and restarted ${DOWN_FOR_MS / 1000} s later. Fast failure = 503 with Retry-After, or a refused/reset connection; error = any other 5xx or no answer within 5 s (a hang).`,
  "",
  "| fault | requests | fast failures | errors | max latency ms | wrong-price orders | oversold / lost SKUs | stale keys after recovery | back after s |",
  "|---|---|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${r.fault} | ${r.requests} | ${r.fastFailures} | ${r.errors} | ${r.maxLatencyMs} | ${r.wrongPriceOrders} (of ${r.ordersAudited}) | ${r.oversoldOrLostSkus} | ${r.staleKeysAfterRecovery} | ${r.recoveredInS} |`,
  ),
  "",
  pass ? "All invariants held." : "**Invariants violated** (see the JSON for error samples).",
  "",
].join("\n");
writeFileSync(new URL("./results/faults.json", import.meta.url), `${JSON.stringify({ seconds: SECONDS, rows, pass }, null, 2)}\n`);
writeFileSync(new URL("./results/faults.md", import.meta.url), md);
console.log(`\n${md}`);
await pool.end();
redis.disconnect();
process.exit(pass ? 0 : 1);
