/**
 * Checkout through HTTP (README "Checkout benchmark"): a checkout server in its own process
 * (bench/checkout-server.ts: the real app) per mode, 64 concurrent buyers each with their own
 * cart and Idempotency-Key, against the test stack's Postgres and Redis; pgbench's single-row
 * rate in the same run; Postgres wait events sampled during each rush; a CPU profile of the
 * checkout process for the new flow on one hot SKU.
 *
 *   pnpm exec tsx bench/checkout-http.ts [buyers=1200] [concurrency=64]
 *
 * Writes bench/results/checkout-http.{json,md}; the raw CPU profile stays in a temporary folder (printed).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { insertProducts, percentile, pgPool, runId, TEST_ENV } from "@flashsale/testkit";
import { Pool } from "undici";
import { pgbenchSingleRow, sampleWaits } from "./checkout-lib.ts";

const BUYERS = Number(process.argv[2] ?? 1200);
const CONCURRENCY = Number(process.argv[3] ?? 64);
const pool = pgPool(TEST_ENV.databaseUrl, 10);

type Mode = "group commit + gate" | "group commit" | "today's flow + gate" | "naive FOR UPDATE";
const MODES: Mode[] = ["group commit + gate", "group commit", "today's flow + gate", "naive FOR UPDATE"];
const scenarios = [
  { name: "1 hot SKU", skus: 1, stockPerSku: Math.floor(BUYERS / 2) },
  { name: "10 hot SKUs", skus: 10, stockPerSku: Math.floor(BUYERS / 20) },
  { name: "1,000 SKUs", skus: 1000, stockPerSku: 1000 },
].filter((s) => !process.env.BENCH_ONLY || s.name === process.env.BENCH_ONLY);

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

async function startServer(mode: Mode, profileDir?: string): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const args = [
    ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
    "--import",
    "tsx",
    "bench/checkout-server.ts",
    mode,
    String(port),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: new URL("..", import.meta.url).pathname,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env },
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on("data", (d: Buffer) => d.toString().includes("listening") && resolve());
    proc.once("exit", (code) => reject(new Error(`checkout server exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

async function stopServer(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}

async function rush(url: string, s: (typeof scenarios)[number]) {
  const tag = runId();
  const products = await insertProducts(
    pool,
    Array.from({ length: s.skus }, (_, i) => ({ sku: `HTTP-${tag}-${i}`, listPriceCents: 500, stock: s.stockPerSku })),
  );
  const { rows: carts } = await pool.query<{ id: string }>(
    "INSERT INTO carts (user_id) SELECT NULL FROM generate_series(1, $1) RETURNING id::text",
    [BUYERS],
  );
  await pool.query(
    `INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
     SELECT c.id, ($2::bigint[])[1 + (row_number() OVER ()) % array_length($2::bigint[], 1)], 1, 500, 1
     FROM unnest($1::uuid[]) AS c(id)`,
    [carts.map((c) => c.id), products.map((p) => p.id)],
  );
  const client = new Pool(url, { connections: CONCURRENCY, pipelining: 1 });
  const latencies: number[] = [];
  const placedLatencies: number[] = [];
  const statuses: Record<string, number> = {};
  const waits = sampleWaits(pool);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < carts.length) {
        const i = next++;
        const t0 = performance.now();
        const res = await client.request({
          method: "POST",
          path: `/carts/${carts[i]?.id}/checkout`,
          headers: { "idempotency-key": `http-${tag}-${i}` },
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        const body = (await res.body.json()) as { error?: string };
        const ms = performance.now() - t0;
        latencies.push(ms);
        const key = res.statusCode === 201 ? "placed" : `${res.statusCode} ${body.error}`;
        if (key === "placed") placedLatencies.push(ms);
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const waitEvents = await waits.stop();
  await client.close();
  const { rows } = await pool.query<{ oversold: number; sold: number; stock: number }>(
    `SELECT count(*) FILTER (WHERE i.available < 0)::int AS oversold,
            (SELECT coalesce(sum(quantity), 0)::int FROM order_items WHERE product_id = ANY($1)) AS sold, sum(i.available)::int AS stock
     FROM inventory i WHERE i.product_id = ANY($1)`,
    [products.map((p) => p.id)],
  );
  const c = rows[0] ?? { oversold: -1, sold: -1, stock: -1 };
  const placed = statuses.placed ?? 0;
  return {
    ordersPerSec: Math.round(placed / seconds),
    checkoutsPerSec: Math.round(BUYERS / seconds),
    placed,
    statuses,
    p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    placedP50Ms: Math.round(percentile(placedLatencies, 50) * 10) / 10,
    placedP99Ms: Math.round(percentile(placedLatencies, 99) * 10) / 10,
    unitsConsistent: c.sold + c.stock === s.stockPerSku * s.skus && c.sold === placed,
    oversoldSkus: c.oversold,
    waitEvents,
  };
}

/** The profile's top functions by self time (the checkout process, new flow, 1 hot SKU). */
function summariseProfile(file: string): { selfMs: number; share: string; fn: string }[] {
  const prof = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  prof.samples.forEach((id, i) => {
    const f = byId.get(id)?.callFrame;
    const where = f
      ? `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*node_modules\/(\.pnpm\/)?/, "").slice(0, 70)}:${f.lineNumber}`
      : "?";
    self.set(where, (self.get(where) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([fn, us]) => ({ fn, selfMs: Math.round(us / 1000), share: `${Math.round((us / total) * 1000) / 10} %` }));
}

const pgbench = await pgbenchSingleRow(pool);
console.log(JSON.stringify({ pgbench }));
const results: ({ scenario: string; mode: Mode; buyers: number } & Awaited<ReturnType<typeof rush>>)[] = [];
let profile: ReturnType<typeof summariseProfile> = [];
for (const s of scenarios) {
  for (const mode of MODES) {
    const profileDir = s.name === "1 hot SKU" && mode === "group commit" ? mkdtempSync(join(tmpdir(), "checkout-prof-")) : undefined;
    const server = await startServer(mode, profileDir);
    // Untimed warm-up on its own product (JIT, pooled connections' plans).
    await rush(server.url, { name: "warm-up", skus: 1, stockPerSku: 100 });
    const r = { scenario: s.name, mode, buyers: BUYERS, ...(await rush(server.url, s)) };
    await stopServer(server.proc);
    if (profileDir) {
      const file = join(profileDir, readdirSync(profileDir)[0] as string);
      profile = summariseProfile(file);
      console.log(`checkout process CPU profile: ${file} (open in Chrome DevTools; not committed: 1.5 MB)`);
    }
    console.log(JSON.stringify(r));
    results.push(r);
  }
}

const naiveOf = (scenario: string) => results.find((r) => r.scenario === scenario && r.mode === "naive FOR UPDATE")?.ordersPerSec;
const summary = {
  measuredAt: new Date().toISOString(),
  machine: "2 cores shared with other engineers' work (tests, builds): absolute numbers are noisy, compare within this run",
  buyers: BUYERS,
  concurrency: CONCURRENCY,
  pgbenchSingleRow: pgbench,
  results,
  checkoutProcessProfile: profile,
};
await writeFile(new URL("./results/checkout-http.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
const topWaits = (w: Record<string, number>) =>
  Object.entries(w)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
const md = [
  `# Checkout through HTTP (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/checkout-http.ts ${BUYERS} ${CONCURRENCY}\`: ${BUYERS} buyers each with their own cart, ${CONCURRENCY} concurrent (undici, keep-alive), one checkout server process per mode (bench/checkout-server.ts, DB pool 10), load generator in another process. Hot SKUs' stock = half the buyers in all. One run, one machine (${summary.machine}).`,
  "",
  pgbench ? `pgbench single-row rate, same run: **${pgbench.tps} tps** (\`${pgbench.command}\`).` : "pgbench: not found",
  "",
  "| scenario | mode | orders | orders/s | × naive | % of pgbench | checkouts/s | p50 ms | p99 ms | placed p50 ms | placed p99 ms | units consistent | wait events (samples) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...results.map((r) => {
    const naive = naiveOf(r.scenario);
    const ratio = naive ? Math.round((r.ordersPerSec / naive) * 10) / 10 : "";
    const ofPgbench = pgbench ? `${Math.round((r.ordersPerSec / pgbench.tps) * 1000) / 10} %` : "";
    return `| ${r.scenario} | ${r.mode} | ${r.placed} | ${r.ordersPerSec} | ${ratio} | ${ofPgbench} | ${r.checkoutsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.placedP50Ms} | ${r.placedP99Ms} | ${r.unitsConsistent} | ${topWaits(r.waitEvents)} |`;
  }),
  "",
  "## Where the checkout process spends its CPU (new flow without gate, 1 hot SKU; top self time)",
  "",
  "| self ms | share | function |",
  "|---|---|---|",
  ...profile.map((p) => `| ${p.selfMs} | ${p.share} | \`${p.fn}\` |`),
  "",
];
await writeFile(new URL("./results/checkout-http.md", import.meta.url), md.join("\n"));
console.log(md.join("\n"));
await pool.end();
