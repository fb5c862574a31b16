/**
 * The fault matrix (issue 6, issue 10 item 5), against the running stack (scripts/up): for each
 * row, a write+read load runs while one component is hurt, then we wait for recovery and check the
 * invariants. Three kinds of row:
 *   kill:<c>  SIGKILL, restarted 4 s later            c = redis kafka connect invalidator catalog postgres
 *   hang:<c>  SIGSTOP, SIGCONT 8 s later (a GC pause, a hung worker, a stalled disk)
 *             c = connect kafka invalidator redis postgres (Postgres: the postmaster and every backend)
 *   slow:<c>  the three services are restarted with their connection to c through a local TCP proxy
 *             (load-tests/latency-proxy.ts), which adds FAULT_LATENCY_MS (default 100) to every
 *             answer for 8 s; the services are restarted on their direct connection afterwards
 *             c = redis postgres
 *
 *   none      no fault: the control row (same load and checks)
 *
 *   scripts/faults [secondsPerRow=14] [row ...]   (default: every row; a bare component = kill:<c>)
 *
 * Per row: requests, fast failures (503 with Retry-After, a refused or reset connection — answering
 * "not now" quickly is allowed), errors (any other 5xx, or no answer within ANSWER_WITHIN_MS = a hang), max
 * latency, **stale reads beyond Δ** (load-tests/staleness.ts: a read that returned a product state
 * older than one committed more than Δ before the read began; DB commit times from the price
 * history), wrong-price orders (order audit), oversold/lost units (stock + units sold must equal the
 * initial stock), stale cache keys once everything is back (consistency checker, every announced
 * schema version). Writes load-tests/results/faults.{json,md}.
 *
 * Whatever happens, a process this run stopped is continued and services it pointed at its proxy
 * are restarted on their direct connection (finally blocks and exit/signal handlers).
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { liveSchemaVersions } from "@flashsale/cache";
import { invalidatorSchema, loadConfig } from "@flashsale/config";
import { auditOrders, checkCacheConsistency } from "@flashsale/consistency";
import { insertProducts, runId, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import pg from "pg";
import { LatencyProxy, viaProxy } from "./latency-proxy.ts";
import { buildHistory, HISTORY_SQL, measureClockOffset, type ObservedRead, type StalenessReport, staleness } from "./staleness.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SECONDS = Number(process.argv[2] ?? 14);
const KILLABLE = ["redis", "kafka", "connect", "invalidator", "catalog", "postgres"] as const;
const HANGABLE = ["connect", "kafka", "invalidator", "redis", "postgres"] as const;
const SLOWABLE = ["redis", "postgres"] as const;
type Component = (typeof KILLABLE)[number];
type Row =
  | { kind: "none"; c: "control" }
  | { kind: "kill"; c: Component }
  | { kind: "hang"; c: (typeof HANGABLE)[number] }
  | { kind: "slow"; c: (typeof SLOWABLE)[number] };
const ALL_ROWS: Row[] = [
  { kind: "none", c: "control" },
  ...KILLABLE.map((c) => ({ kind: "kill" as const, c })),
  ...HANGABLE.map((c) => ({ kind: "hang" as const, c })),
  ...SLOWABLE.map((c) => ({ kind: "slow" as const, c })),
];
function parseRow(arg: string): Row {
  const [kind, c] = arg.includes(":") ? arg.split(":") : arg === "none" ? ["none", "control"] : ["kill", arg];
  const row = ALL_ROWS.find((r) => r.kind === kind && r.c === c);
  if (!row) throw new Error(`unknown fault row '${arg}' (one of: ${ALL_ROWS.map((r) => `${r.kind}:${r.c}`).join(" ")})`);
  return row;
}
const chosen = process.argv.slice(3).length ? process.argv.slice(3).map(parseRow) : ALL_ROWS;

const CATALOG = "http://127.0.0.1:3001";
const CHECKOUT = "http://127.0.0.1:3002";
const ADMIN = { authorization: `Bearer ${process.env.ADMIN_TOKEN ?? "dev-admin-token-change-me"}`, "content-type": "application/json" };
const STOCK = 100_000;
const FAULT_AT_MS = 2_000;
const DOWN_FOR_MS = 4_000;
const HANG_MS = Number(process.env.FAULT_HANG_MS ?? 8_000);
const LATENCY_MS = Number(process.env.FAULT_LATENCY_MS ?? 100);
/** Δ, the staleness bound the catalogs are configured with (docs/architecture.md "Freshness"). */
const DELTA_MS = Number(process.env.CACHE_STALENESS_BOUND_MS ?? 2_000);
/**
 * A request not answered within this is a hang: the longest the services are configured to wait
 * on Postgres (a statement may run DB_STATEMENT_TIMEOUT_MS; a server that does not answer at all is
 * given up 1 s after that: packages/db client.ts readTimeoutMs) plus 1 s of slack, at least 5 s.
 */
const ANSWER_WITHIN_MS = Math.max(5_000, Number(process.env.DB_STATEMENT_TIMEOUT_MS ?? 5_000) + 2_000);
// What scripts/up serves, as an operator with psql would reach it (the owner role: raw SQL writes),
// and the URLs the services use (packages/config defaults unless the operator's environment says otherwise).
const DRIVER_DB = process.env.FAULTS_DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale";
const SERVICE_DB = process.env.DATABASE_URL ?? "postgresql://flashsale_app:flashsale_app@127.0.0.1:5432/flashsale";
const SERVICE_REDIS = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

// query_timeout is client-side: a stopped Postgres cannot enforce statement_timeout.
const pool = new pg.Pool({ connectionString: DRIVER_DB, max: 4, connectionTimeoutMillis: 3_000, query_timeout: 5_000 });
pool.on("error", () => {}); // idle clients die with a killed Postgres
const redis = new Redis(SERVICE_REDIS, { commandTimeout: 2_000, connectTimeout: 2_000 });
redis.on("error", () => {});

const products = await insertProducts(
  pool,
  Array.from({ length: 30 }, (_, i) => ({ sku: `FAULT-${runId()}-${i}`, listPriceCents: 1000 + i, stock: STOCK })),
);
const ids = products.map((p) => p.id);
const pick = () => ids[Math.floor(Math.random() * ids.length)] as number;

const infra = new Set<Component>(["redis", "kafka", "connect", "postgres"]);
// Asynchronous on purpose: a blocked event loop would stall the load and inflate its latencies.
const execFileP = promisify(execFile);
async function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
  await execFileP(cmd, args, { cwd: ROOT, timeout: 180_000, env: env ?? process.env });
}
function pidOf(c: Component): number {
  return Number(readFileSync(`${ROOT}.state/pids/${c}.pid`, "utf8").trim());
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
      { timeoutMs: 30_000, intervalMs: 100, what: "postgres backends to exit" },
    );
  }
  if (infra.has(c)) await run(`${ROOT}infra/native/up`, [c]);
  else await run("bash", ["-c", `source scripts/services.sh && svc_start ${c}`]);
}

// ---- hang: SIGSTOP / SIGCONT, never left stopped ----
const stopped = new Set<number>();
async function pidsToStop(c: (typeof HANGABLE)[number]): Promise<number[]> {
  const pid = pidOf(c);
  if (c !== "postgres") return [pid];
  // Stopping the postmaster alone leaves every backend serving: stop it first (no new backends), then its children.
  const { stdout } = await execFileP("pgrep", ["-P", String(pid)]);
  return [pid, ...stdout.split("\n").filter(Boolean).map(Number)];
}
function stopAll(pids: number[]): void {
  for (const p of pids) {
    process.kill(p, "SIGSTOP");
    stopped.add(p);
  }
}
function continueAll(): void {
  for (const p of [...stopped].reverse()) {
    try {
      process.kill(p, "SIGCONT");
    } catch {
      // already gone
    }
    stopped.delete(p);
  }
}
process.on("exit", continueAll);
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    continueAll();
    void restoreServices().finally(() => process.exit(130));
  });

// ---- slow: services through a latency proxy ----
const SERVICES = ["invalidator", "catalog", "checkout"] as const;
let servicesProxied = false;
async function restartServices(env: NodeJS.ProcessEnv): Promise<void> {
  for (const s of SERVICES) await run("bash", ["-c", `source scripts/services.sh && svc_stop ${s} && svc_start ${s}`], env);
}
async function restoreServices(): Promise<void> {
  if (!servicesProxied) return;
  servicesProxied = false;
  await restartServices(process.env);
}

interface Stats {
  requests: number;
  fastFailures: number;
  errors: number;
  maxLatencyMs: number;
  errorSamples: string[];
  reads: ObservedRead[];
  /** X-Cache of the successful product reads: which path answered. */
  paths: Record<string, number>;
}

async function call(
  stats: Stats,
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: string; xCache: string | null } | null> {
  const t0 = performance.now();
  stats.requests++;
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    const body = await res.text();
    stats.maxLatencyMs = Math.max(stats.maxLatencyMs, performance.now() - t0);
    if (res.status === 503 && res.headers.get("retry-after")) stats.fastFailures++;
    else if (res.status >= 500) {
      stats.errors++;
      if (stats.errorSamples.length < 3) stats.errorSamples.push(`${init.method ?? "GET"} ${url} -> ${res.status} ${body.slice(0, 120)}`);
    }
    return { status: res.status, body, xCache: res.headers.get("x-cache") };
  } catch (err) {
    const ms = performance.now() - t0;
    stats.maxLatencyMs = Math.max(stats.maxLatencyMs, ms);
    // Refused or reset (e.g. in flight when the process was killed) is a fast failure; a timeout is a hang.
    if ((err as Error).name !== "TimeoutError") stats.fastFailures++;
    else {
      stats.errors++;
      if (stats.errorSamples.length < 3)
        stats.errorSamples.push(`${init.method ?? "GET"} ${url} -> ${(err as Error).name} after ${Math.round(ms)} ms`);
    }
    return null;
  }
}

async function read(stats: Stats): Promise<void> {
  const id = pick();
  const startedAtMs = Date.now();
  const res = await call(stats, `${CATALOG}/products/${id}`);
  if (res?.status !== 200) return;
  const { version } = JSON.parse(res.body) as { version: number };
  stats.reads.push({ productId: id, startedAtMs, version });
  const path = res.xCache ?? "none";
  stats.paths[path] = (stats.paths[path] ?? 0) + 1;
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
      if (r < 0.7) await read(stats);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hurts the component while the load runs; returns when it is back (restarted / continued / fast again). */
async function inflict(row: Row, proxy: LatencyProxy | null): Promise<void> {
  await sleep(FAULT_AT_MS);
  if (row.kind === "none") return;
  if (row.kind === "kill") {
    process.kill(pidOf(row.c), "SIGKILL");
    await sleep(DOWN_FOR_MS);
    await restart(row.c);
  } else if (row.kind === "hang") {
    stopAll(await pidsToStop(row.c));
    try {
      await sleep(HANG_MS);
    } finally {
      continueAll();
    }
  } else if (proxy) {
    proxy.latencyMs = LATENCY_MS;
    await sleep(HANG_MS);
    proxy.latencyMs = 0;
  }
}

async function staleKeysAfterRecovery(): Promise<number> {
  // The services' configured version (same environment and defaults as theirs).
  const fallback = loadConfig(invalidatorSchema).CACHE_SCHEMA_VERSION;
  let stale = Number.NaN;
  await waitFor(
    async () => {
      // Every version a catalog announced (a rollout may have two); and the configured one.
      const versions: number[] = await liveSchemaVersions(redis).catch(() => []);
      if (!versions.includes(fallback)) versions.push(fallback);
      stale = 0;
      for (const schemaVersion of versions)
        stale += (await checkCacheConsistency({ redis, pool, schemaVersion, graceMs: 2_000 })).staleBeyondGrace;
      return stale === 0 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: "no stale keys" },
  ).catch(() => {});
  return stale;
}

const rows = [];
for (const row of chosen) {
  const name =
    row.kind === "none"
      ? "none (control)"
      : `${row.kind === "kill" ? "kill -9" : row.kind === "hang" ? "SIGSTOP" : `+${LATENCY_MS} ms`} ${row.c}`;
  const tag = runId();
  let proxy: LatencyProxy | null = null;
  try {
    if (row.kind === "slow") {
      const target = new URL(row.c === "redis" ? SERVICE_REDIS : SERVICE_DB);
      proxy = await new LatencyProxy(target.hostname, Number(target.port || (row.c === "redis" ? 6379 : 5432))).start();
      servicesProxied = true;
      const env = { ...process.env };
      if (row.c === "redis") env.REDIS_URL = viaProxy(SERVICE_REDIS, proxy);
      else env.DATABASE_URL = viaProxy(SERVICE_DB, proxy);
      await restartServices(env);
    }
    const clock = await measureClockOffset(async () => {
      const { rows: r } = await pool.query<{ ms: number }>("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms");
      return Number(r[0]?.ms);
    });
    const since = new Date();
    const stats: Stats = { requests: 0, fastFailures: 0, errors: 0, maxLatencyMs: 0, errorSamples: [], reads: [], paths: {} };
    const until = Date.now() + SECONDS * 1000;
    const running = load(stats, until, tag);
    const faultAt = Date.now() + FAULT_AT_MS;
    await inflict(row, proxy);
    await running;
    await restoreServices();
    await everythingReady();
    const recoveredMs = Date.now() - faultAt;
    const stale = await staleKeysAfterRecovery();
    const { rows: history } = await pool.query<{ productId: number; version: number; committedAtMs: number }>(HISTORY_SQL, [ids]);
    const reads: StalenessReport = staleness(stats.reads, buildHistory(history), clock, DELTA_MS);
    const audit = await auditOrders(pool, { since, productIds: ids });
    const { rows: units } = await pool.query<{ mismatched: number }>(
      `SELECT count(*)::int AS mismatched FROM inventory i
       WHERE i.product_id = ANY($1) AND i.available + (SELECT coalesce(sum(quantity), 0) FROM order_items WHERE product_id = i.product_id) <> $2`,
      [ids, STOCK],
    );
    const result = {
      fault: name,
      requests: stats.requests,
      fastFailures: stats.fastFailures,
      errors: stats.errors,
      maxLatencyMs: Math.round(stats.maxLatencyMs),
      reads: reads.reads,
      staleReadsBeyondDelta: reads.staleBeyondDelta,
      readAgeP99Ms: reads.ageP99Ms,
      readAgeMaxMs: reads.ageMaxMs,
      readPaths: stats.paths,
      wrongPriceOrders: audit.wrongPrice.length,
      ordersAudited: audit.orderLinesChecked,
      oversoldOrLostSkus: (units[0]?.mismatched ?? 0) + audit.negativeStockProducts,
      staleKeysAfterRecovery: stale,
      recoveredInS: Math.round(recoveredMs / 100) / 10,
      clockUncertaintyMs: Math.round(clock.uncertaintyMs * 10) / 10,
      staleReadSamples: reads.samples,
      errorSamples: stats.errorSamples,
    };
    console.log(JSON.stringify(result));
    rows.push(result);
  } finally {
    continueAll();
    await restoreServices();
    await proxy?.stop();
  }
}

const pass = rows.every(
  (r) =>
    r.errors === 0 &&
    r.staleReadsBeyondDelta === 0 &&
    r.wrongPriceOrders === 0 &&
    r.oversoldOrLostSkus === 0 &&
    r.staleKeysAfterRecovery === 0,
);
const md = [
  `# Fault matrix (${new Date().toISOString()})`,
  "",
  `\`scripts/faults ${SECONDS}\`: per row, ${SECONDS} s of load (8 workers: 70 % product reads, 15 % cart+checkout, 10 % admin price writes, 5 % raw SQL writes). After ${FAULT_AT_MS / 1000} s the component is killed with SIGKILL and restarted ${DOWN_FOR_MS / 1000} s later (kill -9), or stopped with SIGSTOP and continued ${HANG_MS / 1000} s later (SIGSTOP; Postgres: the postmaster and every backend), or its connection from the three services gets ${LATENCY_MS} ms added to every answer for ${HANG_MS / 1000} s (a local TCP proxy; the services are restarted through it before the row and back on the direct connection after). Fast failure = 503 with Retry-After, or a refused/reset connection; error = any other 5xx or no answer within ${ANSWER_WITHIN_MS / 1000} s (a hang: the statement timeout + the 1 s read timeout margin + 1 s). Stale read beyond Δ = a product read that returned a state older than one committed more than Δ = ${DELTA_MS} ms before the read began (DB commit times from the price history). Read age = how long the answered state had been outdated when the read began.`,
  "",
  "| fault | requests | fast failures | errors | max latency ms | reads | stale reads beyond Δ | read age p99 / max ms | wrong-price orders | oversold / lost SKUs | stale keys after recovery | back after s |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${r.fault} | ${r.requests} | ${r.fastFailures} | ${r.errors} | ${r.maxLatencyMs} | ${r.reads} | ${r.staleReadsBeyondDelta} | ${r.readAgeP99Ms} / ${r.readAgeMaxMs} | ${r.wrongPriceOrders} (of ${r.ordersAudited}) | ${r.oversoldOrLostSkus} | ${r.staleKeysAfterRecovery} | ${r.recoveredInS} |`,
  ),
  "",
  pass ? "All invariants held." : "**Invariants violated** (see the JSON for error and stale-read samples).",
  "",
].join("\n");
writeFileSync(
  new URL("./results/faults.json", import.meta.url),
  `${JSON.stringify({ seconds: SECONDS, deltaMs: DELTA_MS, rows, pass }, null, 2)}\n`,
);
writeFileSync(new URL("./results/faults.md", import.meta.url), md);
console.log(`\n${md}`);
await pool.end();
redis.disconnect();
process.exit(pass ? 0 : 1);
